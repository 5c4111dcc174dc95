//! Domain values. Once you hold one, it is valid: the wire types in [`crate::wire`] become these
//! only through the validation in [`crate::usecases`].

mod invocation;
mod lazy_json;
mod subscription;
mod trigger;

pub use invocation::{
    Attempt, AttemptOutcome, Heartbeat, Invocation, InvocationState, InvocationType,
};
pub use lazy_json::{LazyJson, Unparsable};
pub use subscription::{
    DispatchMode, EventBridgeTarget, HttpAuth, HttpTarget, PreviousSigningSecret, Subscription,
    SubscriptionType, Target,
};
pub use trigger::{Trigger, TriggerType};
