mod budget_e2e;
mod iam;
mod raw_config;
mod sdk_port;
