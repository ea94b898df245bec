mod budget_e2e;
mod raw_config;
mod sdk_port;
