mod budget_e2e;
mod sdk_port;
