-- Billing database of the reference deployment (SQLite; used by `subject-gateway demo`).
CREATE TABLE customers (
    id            TEXT PRIMARY KEY,
    user_id       INTEGER,
    email         TEXT NOT NULL,
    name          TEXT,
    company       TEXT,
    address_line1 TEXT,
    city          TEXT,
    postal_code   TEXT,
    country       TEXT,
    tax_id        TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX customers_user_id ON customers (user_id);
CREATE INDEX customers_email_lower ON customers (lower(email));

CREATE TABLE invoices (
    id               TEXT PRIMARY KEY,
    customer_id      TEXT NOT NULL REFERENCES customers (id),
    number           TEXT NOT NULL,
    status           TEXT NOT NULL,
    currency         TEXT NOT NULL,
    amount_due_cents INTEGER NOT NULL,
    tax_rate         TEXT,
    billing_name     TEXT,
    billing_email    TEXT,
    issued_at        TEXT NOT NULL
);
CREATE INDEX invoices_customer_id ON invoices (customer_id);

CREATE TABLE payment_methods (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    brand       TEXT NOT NULL,
    last4       TEXT NOT NULL,
    exp_month   INTEGER NOT NULL,
    exp_year    INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX payment_methods_customer_id ON payment_methods (customer_id);
