//! The dispatcher: invocation intake (`POST /trigger-invocations/v1/start` and `/test`) and
//! delivery to webhooks and EventBridge buses, with retries and deadlines. Empty until the
//! delivery issue; the crate exists so the workspace already has its final shape.
#![forbid(unsafe_code)]
