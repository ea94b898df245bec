mod chart;
mod kubeconform;
mod kubectl;
mod workflows;
