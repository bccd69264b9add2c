//! Checks of a parsed `parallel!` call's options against each other: an option that needs
//! another, or that another excludes. Each mistake is reported at its option, all at once.

use super::parse::{Backend, Model, OnError, ReturnAs};
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
        let workers = [
            model
                .max_nbytes
                .as_ref()
                .map(|(key, _)| (key, "threads share arrays without copying them")),
            model.idle_timeout.as_ref().map(|(key, _)| {
                (
                    key,
                    "it is how long worker processes wait for the next call",
                )
            }),
        ];
        for (key, why) in workers.into_iter().flatten() {
            errors.error(
                key.span(),
                format!(
                    "`{key}` needs `backend = processes`: {why}; add `backend = processes`, or remove `{key}`"
                ),
            );
        }
    }
    let how = match model.return_as {
        ReturnAs::List => None,
        ReturnAs::Generator => Some("generator"),
        ReturnAs::Unordered => Some("unordered"),
    };
    if model.backend == Backend::Mpi {
        if let (Some(key), Some(OnError::Continue | OnError::Collect)) =
            (&model.on_error_key, model.on_error)
        {
            errors.error(
                key.span(),
                "with `backend = mpi`, a failed task ends the whole job; remove `on_error`",
            );
        }
        if let (Some(how), Some(token)) = (how, &model.return_as_token) {
            errors.error(
                token.span(),
                format!(
                    "`return_as = {how}` is not available with `backend = mpi`: every rank gets the whole `Vec` once all ranks are done; remove `return_as`"
                ),
            );
        }
        if let Some((key, _)) = &model.pre_dispatch {
            errors.error(
                key.span(),
                "`pre_dispatch` is not available with `backend = mpi`: every rank builds its tasks whole; remove `pre_dispatch`",
            );
        }
    }
    if let (Some(how), Some(key), Some(OnError::Continue | OnError::Collect)) =
        (how, &model.on_error_key, model.on_error)
    {
        errors.error(
            key.span(),
            format!(
                "`return_as = {how}` raises each failure as its result is reached; remove `on_error`, or `return_as` to collect the failures"
            ),
        );
    }
}
