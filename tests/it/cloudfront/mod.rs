mod budget_e2e;
mod check_account;
mod iam;
mod raw_config;
mod sdk_port;
