//! `postie deliver`: a local delivery agent. One message from standard input goes into one
//! user's Maildir through the same pipeline as LMTP and SMTP, and the exit status tells the
//! caller (Postfix's `mailbox_command`, procmail, a script) what happened, in sysexits terms.

use std::io::{self, BufRead, BufReader, Read};
use std::process::ExitCode;
use std::sync::Arc;

use postie_intake::{trace_headers, uses_crlf, Deliverer, Door, Spooled};
use postie_proto::smtp::DeliveryError;

use crate::cli::DeliverArgs;
use postie::config::Config;

/// sysexits.h: the user does not exist.
const EX_NOUSER: u8 = 67;
/// sysexits.h: an output file cannot be created (used for over quota and permanent failures).
const EX_CANTCREAT: u8 = 73;
/// sysexits.h: a temporary failure; the MTA keeps the message and retries.
const EX_TEMPFAIL: u8 = 75;

/// The longest mbox `From ` envelope line looked for at the start of the message.
const MAX_FROM_LINE: u64 = 1000;

struct Failure {
    code: u8,
    message: String,
}

pub fn run(args: DeliverArgs) -> ExitCode {
    match deliver(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("postie deliver: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn deliver(args: &DeliverArgs) -> Result<(), Failure> {
    // A broken configuration is for the administrator to fix; until then the MTA keeps the
    // mail and retries, rather than bouncing it.
    let temporary = |message: String| Failure {
        code: EX_TEMPFAIL,
        message,
    };
    let config = Config::load_without_tls(&args.config).map_err(|e| temporary(format!("{e:#}")))?;
    let store = crate::store::open(&config.store);
    let users = crate::user_db::open(&config, &store).map_err(|e| temporary(format!("{e:#}")))?;
    let deliverer = Arc::new(Deliverer::new(store, users, config.intake.policy.clone()));
    // One message, one thing at a time: a single-threaded runtime; its blocking pool takes
    // the Maildir writes.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| temporary(format!("cannot start the runtime: {e}")))?;
    let user = runtime
        .block_on(deliverer.resolve(args.user.as_bytes(), Door::Local, None))
        .map_err(|e| failure(e, &args.user))?;

    let mut stdin = BufReader::new(io::stdin().lock());
    let (envelope_sender, first_line) =
        envelope_line(&mut stdin).map_err(|e| temporary(format!("reading the message: {e}")))?;
    let mut message = (&first_line[..]).chain(stdin);
    let body = Spooled::from_reader(&config.intake.spool_dir, &mut message).map_err(|e| {
        temporary(format!(
            "spooling the message in {}: {e}",
            config.intake.spool_dir.display()
        ))
    })?;
    let crlf = body.head(8192).map_or(true, |head| uses_crlf(&head));
    let sender = match (&args.sender, envelope_sender) {
        (given, _) if !given.is_empty() => given.clone().into_bytes(),
        (_, Some(from_line)) => from_line,
        _ => Vec::new(),
    };
    let headers = trace_headers(&sender, args.user.as_bytes(), None, crlf);
    let mut results = runtime.block_on(deliverer.deliver(Arc::new(body), vec![(user, headers)]));
    results.remove(0).map_err(|e| failure(e, &args.user))
}

/// Reads the first line when it is an mbox envelope (`From sender date`), which Postfix and
/// procmail may put on top and which is not part of the message. Returns the sender it names
/// (`MAILER-DAEMON` stands for the null sender) and the bytes to deliver from the first line:
/// none when it was an envelope line, else what was read.
fn envelope_line(input: &mut impl BufRead) -> io::Result<(Option<Vec<u8>>, Vec<u8>)> {
    let mut first = Vec::new();
    input.take(MAX_FROM_LINE).read_until(b'\n', &mut first)?;
    if !first.starts_with(b"From ") || !first.ends_with(b"\n") {
        return Ok((None, first));
    }
    let sender = first[5..]
        .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default()
        .to_vec();
    let sender = if sender == b"MAILER-DAEMON" {
        Vec::new()
    } else {
        sender
    };
    Ok((Some(sender), Vec::new()))
}

fn failure(error: DeliveryError, user: &str) -> Failure {
    let code = match error {
        DeliveryError::UnknownUser | DeliveryError::RelayDenied => EX_NOUSER,
        DeliveryError::OverQuota { temporary: true } | DeliveryError::Temporary => EX_TEMPFAIL,
        DeliveryError::OverQuota { temporary: false }
        | DeliveryError::TooBig
        | DeliveryError::Permanent => EX_CANTCREAT,
    };
    let reply = error.reply();
    Failure {
        code,
        message: format!("{user}: {}", reply.lines.join(" ")),
    }
}
