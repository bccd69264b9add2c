//! Checks of a parsed `parallel!` call's options against each other: an option that needs
//! another, or that another excludes. Each mistake is reported at its option, all at once.

use super::parse::{Backend, Model, OnError};
use crate::errors::Errors;

/// Reports every option that the others exclude, or that needs one missing.
pub fn check(model: &Model, errors: &mut Errors) {
    if model.backend != Backend::Processes {
        let limits = [
            model.timeout.as_ref().map(|(key, _)| key),
            model.max_memory.as_ref().map(|(key, _)| key),
        ];
        for key in limits.into_iter().flatten() {
            errors.error(
                key.span(),
                format!(
                    "`{key}` needs `backend = processes`: a thread cannot be stopped or capped from outside; add `backend = processes`"
                ),
            );
        }
    }
    if model.backend == Backend::Mpi {
        if let (Some(key), Some(OnError::Continue | OnError::Collect)) =
            (&model.on_error_key, model.on_error)
        {
            errors.error(
                key.span(),
                "with `backend = mpi`, a failed task ends the whole job; remove `on_error`",
            );
        }
        if model.unordered {
            errors.error(
                model.backend_token.as_ref().expect("set with `mpi`").span(),
                "`return_as = unordered` is not available with `backend = mpi`: every rank gets the whole `Vec` once all ranks are done",
            );
        }
    }
    if model.unordered
        && let (Some(key), Some(OnError::Continue | OnError::Collect)) =
            (&model.on_error_key, model.on_error)
    {
        errors.error(
                key.span(),
                "`return_as = unordered` raises each failure as its result is reached; remove `on_error`, or `return_as` to collect the failures",
            );
    }
}
