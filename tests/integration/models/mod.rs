//! Models API and service endpoints.

pub mod test_models;
