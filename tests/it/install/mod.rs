mod chart;
mod kubectl;
