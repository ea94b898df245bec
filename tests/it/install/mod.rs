mod chart;
mod kubeconform;
mod kubectl;
