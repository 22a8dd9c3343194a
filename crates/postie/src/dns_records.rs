//! `postie dns-records DOMAIN`: the records that let mail clients find this server. SRV
//! records as RFC 6186 defines them, with implicit TLS preferred as RFC 8314 asks, and the
//! host names Thunderbird (autoconfig.DOMAIN) and Outlook (autodiscover.DOMAIN) try.

use anyhow::{bail, Result};

use crate::cli::DnsRecordsArgs;
use postie::config::Config;

pub fn run(args: DnsRecordsArgs) -> Result<()> {
    let domain = args.domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty()
        || !domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        bail!("{:?} is not a domain name such as example.org", args.domain);
    }
    let config = match Config::load_without_tls(&args.config) {
        Ok(config) => Some(config),
        Err(error) if args.host.is_some() => {
            eprintln!("postie: not using {}: {error:#}", args.config.display());
            None
        }
        Err(error) => {
            return Err(
                error.context("name the mail host with --host, or the configuration with --config")
            )
        }
    };
    let host = match (&args.host, &config) {
        (Some(host), _) => host.clone(),
        (None, Some(config)) => config.autoconfig.host.clone(),
        (None, None) => bail!("name the mail host with --host"),
    };
    let host = format!("{}.", host.trim_end_matches('.'));
    // A port of 0 (tests, socket activation) says nothing about what clients should use.
    let port =
        |configured: Option<u16>, standard: u16| configured.filter(|p| *p != 0).unwrap_or(standard);
    let (pop3s, pop3, starttls, smtp) = match &config {
        Some(config) => (
            config.autoconfig.pop3s_port.map(|p| port(Some(p), 995)),
            config.autoconfig.pop3_port.map(|p| port(Some(p), 110)),
            config.autoconfig.starttls,
            config.autoconfig.smtp.clone(),
        ),
        None => (Some(995), Some(110), true, None),
    };
    let ttl = args.ttl;
    println!("; Mail client discovery for {domain}, served by {host}");
    println!("; POP3 (RFC 6186), implicit TLS first (RFC 8314: lower priority number wins)");
    match pop3s {
        Some(p) => println!("_pop3s._tcp.{domain}. {ttl} IN SRV 0 1 {p} {host}"),
        None => println!("_pop3s._tcp.{domain}. {ttl} IN SRV 0 0 0 ."),
    }
    match (pop3, starttls) {
        (Some(p), true) => println!("_pop3._tcp.{domain}. {ttl} IN SRV 10 1 {p} {host}"),
        _ => println!("_pop3._tcp.{domain}. {ttl} IN SRV 0 0 0 ."),
    }
    println!("; No IMAP here: a target of \".\" tells clients not to look (RFC 6186 section 4);");
    println!("; leave these out if another server of {domain} offers IMAP.");
    println!("_imap._tcp.{domain}. {ttl} IN SRV 0 0 0 .");
    println!("_imaps._tcp.{domain}. {ttl} IN SRV 0 0 0 .");
    if let Some((smtp_host, smtp_port)) = smtp {
        let service = if smtp_port == 465 {
            "_submissions"
        } else {
            "_submission"
        };
        println!("; Sending (RFC 6186, RFC 8314)");
        println!(
            "{service}._tcp.{domain}. {ttl} IN SRV 0 1 {smtp_port} {}.",
            smtp_host.trim_end_matches('.')
        );
    }
    println!("; Autoconfiguration: Thunderbird fetches https://autoconfig.{domain}/mail/config-v1.1.xml,");
    println!("; Outlook posts to https://autodiscover.{domain}/autodiscover/autodiscover.xml; serve both");
    println!(
        "; from postie's [http] listener behind a web server with a certificate for these names."
    );
    println!("autoconfig.{domain}. {ttl} IN CNAME {host}");
    println!("autodiscover.{domain}. {ttl} IN CNAME {host}");
    println!("_autodiscover._tcp.{domain}. {ttl} IN SRV 0 1 443 {host}");
    Ok(())
}
