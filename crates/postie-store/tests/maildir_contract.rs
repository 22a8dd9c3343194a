//! The Maildir store keeps the whole store contract, on real Maildirs in a temporary folder.

fn maildir_store() -> (tempfile::TempDir, postie_store::MaildirStore) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let template = dir.path().join("{user}").join("Maildir");
    let store = postie_store::MaildirStore::new(template.to_string_lossy().into_owned());
    (dir, store)
}

postie_store::store_contract_tests!(maildir_store);
