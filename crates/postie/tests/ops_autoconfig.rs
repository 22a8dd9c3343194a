//! Mail client auto-configuration: Thunderbird's autoconfig and Outlook's Autodiscover,
//! read back with an XML parser the way each client reads them (element names, order and
//! values), for the ports the server really listens on.

mod common;
mod ops_support;

use common::ServerBuilder;
use ops_support::{http, python};

/// What Thunderbird's readFromXML takes from each POP3 incomingServer, as JSON lines.
const THUNDERBIRD: &str = r#"
import json, sys
import xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
assert root.tag == "clientConfig" and root.get("version") == "1.1"
provider = root.find("emailProvider")
print(json.dumps({"id": provider.get("id"), "domains": [d.text for d in provider.findall("domain")]}))
for server in provider.findall("incomingServer"):
    pop3 = server.find("pop3")
    print(json.dumps({
        "type": server.get("type"),
        "hostname": server.findtext("hostname"),
        "port": int(server.findtext("port")),
        "socketType": server.findtext("socketType"),
        "username": server.findtext("username"),
        "authentication": server.findtext("authentication"),
        "leaveMessagesOnServer": pop3.findtext("leaveMessagesOnServer"),
        "daysToLeaveMessagesOnServer": pop3.findtext("daysToLeaveMessagesOnServer"),
    }))
"#;

/// What Outlook takes from the POX response: each Protocol of the Account, in order.
const OUTLOOK: &str = r#"
import json, sys
import xml.etree.ElementTree as ET
ns = {"a": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
      "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
root = ET.fromstring(sys.stdin.read())
assert root.tag == "{%s}Autodiscover" % ns["a"]
account = root.find("o:Response/o:Account", ns)
assert account.findtext("o:AccountType", namespaces=ns) == "email"
assert account.findtext("o:Action", namespaces=ns) == "settings"
for protocol in account.findall("o:Protocol", ns):
    print(json.dumps({key: protocol.findtext("o:" + key, namespaces=ns) for key in
        ["Type", "Server", "Port", "LoginName", "SSL", "Encryption", "SPA", "AuthRequired", "DomainRequired"]}))
"#;

fn lines(output: &str) -> Vec<serde_json::Value> {
    output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const SECTIONS: &str = "[http]\nlisten = [\"127.0.0.1:0\"]\n\
    [autoconfig]\nhost = \"localhost\"\ndomains = [\"example.org\"]\ndisplay_name = \"Example Mail\"\n\
    leave_on_server = true\nleave_on_server_days = 14\n";

#[test]
fn thunderbird_reads_pop3s_first_then_stls_on_the_real_ports() {
    let server = ServerBuilder::new().sections(SECTIONS).start();
    let addr = server.listener("http");
    for path in [
        "/mail/config-v1.1.xml",
        "/.well-known/autoconfig/mail/config-v1.1.xml",
    ] {
        let (status, body) = http(
            addr,
            &format!("GET {path}?emailaddress=alice%40Example.org HTTP/1.1\r\nHost: autoconfig.example.org\r\n\r\n"),
        );
        assert_eq!(status, 200, "{body}");
        let read = lines(&python(THUNDERBIRD, &body));
        assert_eq!(read[0]["id"], "example.org");
        assert_eq!(read[0]["domains"][0], "example.org");
        assert_eq!(read.len(), 3, "two POP3 servers: {read:?}");
        for (server_read, (port, socket_type)) in read[1..].iter().zip([
            (server.tls.port(), "SSL"),
            (server.plain.port(), "STARTTLS"),
        ]) {
            assert_eq!(server_read["type"], "pop3");
            assert_eq!(server_read["hostname"], "localhost");
            assert_eq!(server_read["port"], port);
            assert_eq!(server_read["socketType"], socket_type);
            assert_eq!(server_read["username"], "%EMAILLOCALPART%");
            assert_eq!(server_read["authentication"], "password-cleartext");
            assert_eq!(server_read["leaveMessagesOnServer"], "true");
            assert_eq!(server_read["daysToLeaveMessagesOnServer"], "14");
        }
    }
    // What the file says works: the login Thunderbird would make, over the port it names.
    let mut client = server.tls_client();
    client.login("alice", "wonderland");
    // Domains this server does not serve are not claimed.
    let (status, _) = http(
        addr,
        "GET /mail/config-v1.1.xml?emailaddress=eve%40elsewhere.net HTTP/1.1\r\n\r\n",
    );
    assert_eq!(status, 404);
    let (status, _) = http(
        addr,
        "GET /mail/config-v1.1.xml?emailaddress=%3Cscript%3E%40example.org HTTP/1.1\r\n\r\n",
    );
    assert_eq!(status, 404);
}

fn autodiscover_request(address: &str) -> String {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n\
         <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\r\n\
         <Request><EMailAddress>{address}</EMailAddress>\r\n\
         <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\r\n\
         </Request></Autodiscover>\r\n"
    );
    format!(
        "POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: autodiscover.example.org\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn outlook_reads_pop3_protocols_with_the_login_name() {
    let server = ServerBuilder::new().sections(SECTIONS).start();
    let addr = server.listener("http");
    let (status, body) = http(addr, &autodiscover_request("alice@example.org"));
    assert_eq!(status, 200, "{body}");
    let protocols = lines(&python(OUTLOOK, &body));
    assert_eq!(protocols.len(), 2, "{protocols:?}");
    let tls_port = server.tls.port().to_string();
    let plain_port = server.plain.port().to_string();
    for (protocol, (port, encryption)) in protocols
        .iter()
        .zip([(&tls_port, "SSL"), (&plain_port, "TLS")])
    {
        assert_eq!(protocol["Type"], "POP3");
        assert_eq!(protocol["Server"], "localhost");
        assert_eq!(protocol["Port"], port.as_str());
        assert_eq!(protocol["LoginName"], "alice");
        assert_eq!(protocol["SSL"], "on");
        assert_eq!(protocol["Encryption"], encryption);
        assert_eq!(protocol["SPA"], "off");
        assert_eq!(protocol["AuthRequired"], "on");
    }
    assert_eq!(
        http(addr, &autodiscover_request("alice@elsewhere.net")).0,
        404
    );
    assert_eq!(
        http(addr, "GET /autodiscover/autodiscover.xml HTTP/1.1\r\n\r\n").0,
        405
    );
    assert_eq!(
        http(
            addr,
            "POST /Autodiscover/Autodiscover.xml HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        )
        .0,
        400
    );
}

#[test]
fn address_logins_and_fixed_ports() {
    let sections = "[http]\nlisten = [\"127.0.0.1:0\"]\n\
        [autoconfig]\nhost = \"mail.example.org\"\nusername = \"address\"\npop3s_port = 995\npop3_port = 110\n\
        smtp = \"smtp.example.org:587\"\n";
    let server = ServerBuilder::new().sections(sections).start();
    let addr = server.listener("http");
    let (_, body) = http(addr, &autodiscover_request("carol@any.example"));
    let protocols = lines(&python(OUTLOOK, &body));
    assert_eq!(protocols[0]["LoginName"], "carol@any.example");
    assert_eq!(protocols[0]["Port"], "995");
    assert_eq!(protocols[1]["Port"], "110");
    assert_eq!(protocols[2]["Type"], "SMTP");
    assert_eq!(protocols[2]["Port"], "587");
    let (_, body) = http(
        addr,
        "GET /mail/config-v1.1.xml?emailaddress=carol%40any.example HTTP/1.1\r\n\r\n",
    );
    let read = lines(&python(THUNDERBIRD, &body));
    assert_eq!(read[1]["username"], "%EMAILADDRESS%");
    assert_eq!(read[1]["port"], 995);
    assert_eq!(read[1]["leaveMessagesOnServer"], "false");
    assert!(body.contains("<outgoingServer type=\"smtp\">"), "{body}");
}
