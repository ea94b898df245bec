mod app_example_e2e;
mod capacity_run;
mod iam_e2e;
mod leader_e2e;
mod lifecycle_e2e;
mod shared_account_e2e;
mod soak;
mod tenancy_e2e;
