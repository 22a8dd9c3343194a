/// Errors that stop the intake listeners from starting.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(
        "cannot listen on {listen}: {source} (is another server using it, or does it need root?)"
    )]
    Bind {
        listen: String,
        source: std::io::Error,
    },
}
