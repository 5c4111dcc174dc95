//! The invocation-complete callback (`POST /trigger-invocations/v1/{id}/complete`), authenticated
//! by the invocation's secret. Empty until the delivery issue; the crate exists so the workspace
//! already has its final shape.
#![forbid(unsafe_code)]
