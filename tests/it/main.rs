//! Billstream's integration tests: one binary (each links the whole stack), a module per area, every test on its
//! own database of a throwaway PostgreSQL that `testkit` starts once for the process (and, for scale mode, its own
//! ClickHouse database and topic on the ClickHouse server and broker `testkit` starts once).

mod aggregation;
mod analytics;
mod api;
mod billable_metrics;
mod binary;
mod catalog_rules;
mod coupons;
mod credit_notes;
mod customers;
mod event_store;
mod events;
mod faults;
mod fees;
mod invoices;
mod observability;
mod one_off;
mod openapi;
mod organizations;
mod past_usage;
mod plans;
mod sdk;
mod subscriptions;
mod support;
mod taxes;
mod tracking;
mod webhooks;
