//! Stored passwords produced by the real Dovecot: `doveadm pw -s SCHEME -p PASSWORD`
//! (plus `-r ROUNDS` where noted), Dovecot 2.3.19.1 (9b53102964), Debian package dovecot-core.

use postie_auth::{PasswordHash, Scheme};

const ASCII: &[u8] = b"correct horse";
const UTF8: &[u8] = "pässwörd".as_bytes();

const FIXTURES: &[(&str, &[u8], Scheme)] = &[
    ("{PLAIN}correct horse", ASCII, Scheme::Plain),
    ("{CLEARTEXT}correct horse", ASCII, Scheme::Plain),
    ("{PLAIN}pässwörd", UTF8, Scheme::Plain),
    (
        "{SHA512-CRYPT}$6$APGnh3Vpzdvc4I20$oouUYS31FYjLuNrJwsyYstEoca/u7IXIYhSpO0X4eK.FYsGzL3nM4hgTnaFWac3zYhLWWq0Dfym1fu.K3H4UV.",
        ASCII,
        Scheme::Sha512Crypt,
    ),
    (
        "{SHA512-CRYPT}$6$p9wpd.jngYwR.1h5$lZMtRYqzkRFJwbg4c3L2XGipuPaTpV5zzFwXZ25DF3LoJlWO/Y9ZMWo2qmBzGFYxQO8i7pe3nUnzJ82TgvDIk.",
        UTF8,
        Scheme::Sha512Crypt,
    ),
    // -r 10000
    (
        "{SHA512-CRYPT}$6$rounds=10000$jsnlhtxyEeX6W2oZ$60cflElc3FUI5rmHbwACtBJBcZClYQBS2fQMwV52wPTDl1dyEXQCOYtI/6In/Go.9/Q2kfuKlOHCChnhUP15f1",
        ASCII,
        Scheme::Sha512Crypt,
    ),
    (
        "{SHA256-CRYPT}$5$Fxv2QnH2FyfFVq50$tnm3Wpdkd.nrS9.Vxu/7kqkgFoKm4tMgmlpxWjuzPA.",
        ASCII,
        Scheme::Sha256Crypt,
    ),
    (
        "{SHA256-CRYPT}$5$7EBShAlVNv96RApd$K/BhrLoUZOoG5aiD0kjIt7pZTb0DqGGSXWbvq4EMt/1",
        UTF8,
        Scheme::Sha256Crypt,
    ),
    // -r 2000
    (
        "{SHA256-CRYPT}$5$rounds=2000$8jvUjRVGnhMpD3ph$8.9V77BFQ/UO/RpI8Ld5.uzmtw5Vacs/jferCuLkCU3",
        ASCII,
        Scheme::Sha256Crypt,
    ),
    (
        "{BLF-CRYPT}$2y$05$4Ye6foFkervN8lVqyNXVJOYFYp/upcuJSVNWBIP9FVjRgsU7Nd9dW",
        ASCII,
        Scheme::BlfCrypt,
    ),
    (
        "{BLF-CRYPT}$2y$05$fKKMcaUBBzGONZdiZF4DPeqBtNrtnSl7NUOma9xQffHJERYb8lKt.",
        UTF8,
        Scheme::BlfCrypt,
    ),
    // `-s CRYPT`: Dovecot's CRYPT generates bcrypt.
    (
        "{CRYPT}$2y$05$2OXTZL4bEeQT1RS7QBFqCua0HA7HWiIHS.L5LmX0HH620d.IYA96O",
        ASCII,
        Scheme::BlfCrypt,
    ),
    (
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$L+YTtTqDsU+spDomwLUWKA$QHgouRfoVYb5rTZFNHyEhE2Q9R1cIEUpOXA0tlxYLTw",
        ASCII,
        Scheme::Argon2id,
    ),
    (
        "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$OkFHCu8AXNpxIvzDIqoVqA$v4gzazDMIX57GWBT98P8cta+ENeJAN+aCghRbWAVS/M",
        ASCII,
        Scheme::Argon2i,
    ),
    (
        "{SSHA256}OZHbkMEtMfe7o89YW4JxwiWNziJt6rQ3qgSOhE5+t06vwi+V",
        ASCII,
        Scheme::Ssha256,
    ),
    (
        "{SSHA256}rKNg2peM4hwjydLUvPEJuHAfbVKIbWvqAJ6VhgaOVz/taC8h",
        UTF8,
        Scheme::Ssha256,
    ),
    (
        "{SSHA512}BTwXqVKpBIfkOBSV9+XKsDqmEN9W32boOPFIPtqx0DumPTt4fAn7dbxWS9ZUn1PVnY6RixIgkC0H0K3hBEBE0KFkBCM=",
        ASCII,
        Scheme::Ssha512,
    ),
    (
        "{SSHA512}9shKNFLanzLFAyN3gCvEFS4Fnp1Pb48wMbRWYKcw7wYYnxxRLR7f8Dse5kqFsopGacxOiJvLCAiG4BBJrJuh+0Fh+eE=",
        UTF8,
        Scheme::Ssha512,
    ),
    (
        "{PBKDF2}$1$/5EKBwx1OjqRAp.5$5000$be122bbd08e554b72f5e98bcc585167f1842ecdf",
        ASCII,
        Scheme::Pbkdf2,
    ),
    (
        "{PBKDF2}$1$PUGlnijX3kGU2x6d$5000$44491f5f355fbacb32a8890ca70dc120eec486e8",
        UTF8,
        Scheme::Pbkdf2,
    ),
    // -r 1000
    (
        "{PBKDF2}$1$wmnj83P6N6yFbua3$1000$29dfdef552f4644620499671f3ed658ff0df516b",
        ASCII,
        Scheme::Pbkdf2,
    ),
    (
        "{SCRAM-SHA-256}4096,qC7kzqc7Bl+hTn3Fn6R9rg==,ct/a3AGMUeB2ptvNeVkdV5gDLv8K4kwO883QzaoXU+M=,8G5gOX7AHK1S9AzHdVYRNXbxmxY57+M7TahZM6VNLlI=",
        ASCII,
        Scheme::ScramSha256,
    ),
    (
        "{SCRAM-SHA-256}4096,Km3eLWloD7wLeLaSmyf/iw==,lihmiERICMBmQntKGm2UNITgQ/B50Zc+vtsAdXfyDVY=,huCWpqtFi0dW6BTgrJ6D4XOcBJhiIO/2OojMsOvVR9I=",
        UTF8,
        Scheme::ScramSha256,
    ),
];

#[test]
fn dovecot_hashes_verify() {
    for &(stored, password, scheme) in FIXTURES {
        let hash = PasswordHash::parse(stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
        assert_eq!(hash.scheme(), scheme, "{stored}");
        assert!(hash.verify(password), "{stored} should accept its password");
        assert!(
            !hash.verify(b"correct horsf"),
            "{stored} accepted a wrong password"
        );
        assert!(!hash.verify(b""), "{stored} accepted the empty password");
    }
}

#[test]
fn scheme_names_are_case_insensitive() {
    let hash = PasswordHash::parse(
        "{sha256-crypt}$5$Fxv2QnH2FyfFVq50$tnm3Wpdkd.nrS9.Vxu/7kqkgFoKm4tMgmlpxWjuzPA.",
    )
    .unwrap();
    assert!(hash.verify(ASCII));
    assert!(PasswordHash::parse("{Plain}x").unwrap().verify(b"x"));
}

/// Without a `{SCHEME}` prefix Dovecot assumes CRYPT, and the crypt id picks the algorithm.
#[test]
fn bare_crypt_strings() {
    let bare = [
        (
            "$6$APGnh3Vpzdvc4I20$oouUYS31FYjLuNrJwsyYstEoca/u7IXIYhSpO0X4eK.FYsGzL3nM4hgTnaFWac3zYhLWWq0Dfym1fu.K3H4UV.",
            Scheme::Sha512Crypt,
        ),
        (
            "$5$Fxv2QnH2FyfFVq50$tnm3Wpdkd.nrS9.Vxu/7kqkgFoKm4tMgmlpxWjuzPA.",
            Scheme::Sha256Crypt,
        ),
        (
            "$2y$05$4Ye6foFkervN8lVqyNXVJOYFYp/upcuJSVNWBIP9FVjRgsU7Nd9dW",
            Scheme::BlfCrypt,
        ),
        // The same bcrypt hash under the other version letters that mean the same here.
        (
            "$2b$05$4Ye6foFkervN8lVqyNXVJOYFYp/upcuJSVNWBIP9FVjRgsU7Nd9dW",
            Scheme::BlfCrypt,
        ),
        (
            "$2a$05$4Ye6foFkervN8lVqyNXVJOYFYp/upcuJSVNWBIP9FVjRgsU7Nd9dW",
            Scheme::BlfCrypt,
        ),
        (
            "$argon2i$v=19$m=32768,t=4,p=1$OkFHCu8AXNpxIvzDIqoVqA$v4gzazDMIX57GWBT98P8cta+ENeJAN+aCghRbWAVS/M",
            Scheme::Argon2i,
        ),
    ];
    for (stored, scheme) in bare {
        for entry in [stored.to_string(), format!("{{CRYPT}}{stored}")] {
            let hash = PasswordHash::parse(&entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
            assert_eq!(hash.scheme(), scheme);
            assert!(hash.verify(ASCII), "{entry}");
            assert!(!hash.verify(b"wrong"), "{entry}");
        }
    }
}

#[test]
fn malformed_hashes_are_errors() {
    let bad = [
        "",
        "plaintext",
        "$1$abc$def",
        "{",
        "{PLAIN",
        "{MD5-CRYPT}$1$abc$def",
        "{CRYPT}",
        "{CRYPT}$7$x",
        "{SHA512-CRYPT}",
        "{SHA512-CRYPT}$5$Fxv2QnH2FyfFVq50$tnm3Wpdkd.nrS9.Vxu/7kqkgFoKm4tMgmlpxWjuzPA.",
        "{SHA512-CRYPT}$6$salt",
        "{SHA512-CRYPT}$6$salt$short",
        "{SHA512-CRYPT}$6$rounds=x$salt$hash",
        "{SHA256-CRYPT}$5$Fxv2QnH2FyfFVq50$tnm3Wpdkd.nrS9.Vxu/7kqkgFoKm4tMgmlpxWjuzPA!",
        "{BLF-CRYPT}$2y$05$tooshort",
        "{BLF-CRYPT}$2y$99$4Ye6foFkervN8lVqyNXVJOYFYp/upcuJSVNWBIP9FVjRgsU7Nd9dW",
        "{BLF-CRYPT}$2x$05$4Ye6foFkervN8lVqyNXVJOYFYp/upcuJSVNWBIP9FVjRgsU7Nd9dW",
        "{ARGON2ID}$argon2i$v=19$m=32768,t=4,p=1$OkFHCu8AXNpxIvzDIqoVqA$v4gzazDMIX57GWBT98P8cta+ENeJAN+aCghRbWAVS/M",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$L+YTtTqDsU+spDomwLUWKA",
        "{ARGON2ID}not-phc",
        "{SSHA256}",
        "{SSHA256}not base64!",
        "{SSHA256}OZHbkMEtMfe7o89YW4JxwiWNziJt6rQ3qgSOhE5+t04=",
        "{PBKDF2}$1$salt$5000$zz",
        "{PBKDF2}$1$salt$0$be122bbd08e554b72f5e98bcc585167f1842ecdf",
        "{PBKDF2}$2$salt$5000$be122bbd08e554b72f5e98bcc585167f1842ecdf",
        "{PBKDF2}$1$salt$5000$be122bbd08e554b72f5e98bcc585167f1842ec",
        "{SCRAM-SHA-256}4096,qC7kzqc7Bl+hTn3Fn6R9rg==,ct/a3AGMUeB2ptvNeVkdV5gDLv8K4kwO883QzaoXU+M=",
    ];
    for entry in bad {
        assert!(PasswordHash::parse(entry).is_err(), "{entry:?} parsed");
    }
}

#[test]
fn debug_does_not_show_the_password() {
    let hash = PasswordHash::parse("{PLAIN}correct horse").unwrap();
    let shown = format!("{hash:?}");
    assert!(!shown.contains("horse"), "{shown}");
    assert!(shown.contains("Plain"), "{shown}");
}
