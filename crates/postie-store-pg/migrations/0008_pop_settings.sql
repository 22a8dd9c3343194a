-- Version 8: each user's POP3 settings (postie user pop-settings, the account page): since
-- when mail is listed ("from now on"; NULL: all mail) and what happens to a message once a
-- POP3 client retrieved it. No row: the defaults (all mail, keep). Keyed by the maildrop's
-- user name, so a user may choose before any mail has come.
CREATE TABLE pop_settings (
    user_name       TEXT PRIMARY KEY,
    since           TIMESTAMPTZ,
    after_retrieval TEXT NOT NULL DEFAULT 'keep'
                    CHECK (after_retrieval IN ('keep', 'archive', 'trash', 'delete')),
    changed_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
