//! Writing buffered replies under a deadline.

use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The peer failed, or took none of the output for the whole limit.
#[derive(Debug)]
pub struct WriteFailed;

/// Writes and clears `output`. A client that takes none of it for `limit` is gone: without
/// the limit, a client that never reads would hold its connection (and whatever the session
/// has open) for ever.
pub async fn write_within<W: AsyncWrite + Unpin>(
    stream: &mut W,
    output: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), WriteFailed> {
    if output.is_empty() {
        return Ok(());
    }
    let write = async {
        stream.write_all(output).await?;
        stream.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => {
            output.clear();
            Ok(())
        }
        Ok(Err(_)) | Err(_) => Err(WriteFailed),
    }
}
