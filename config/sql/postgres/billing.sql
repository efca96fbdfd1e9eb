-- Billing database of the reference deployment (PostgreSQL).
CREATE TABLE customers (
    id            VARCHAR(64) PRIMARY KEY,
    user_id       BIGINT,
    email         TEXT NOT NULL,
    name          TEXT,
    company       TEXT,
    address_line1 TEXT,
    city          TEXT,
    postal_code   TEXT,
    country       TEXT,
    tax_id        TEXT,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX customers_user_id ON customers (user_id);
CREATE INDEX customers_email_lower ON customers (lower(email));

CREATE TABLE invoices (
    id               VARCHAR(64) PRIMARY KEY,
    customer_id      VARCHAR(64) NOT NULL REFERENCES customers (id),
    number           TEXT NOT NULL,
    status           TEXT NOT NULL,
    currency         CHAR(3) NOT NULL,
    amount_due_cents BIGINT NOT NULL,
    tax_rate         NUMERIC(5, 2),
    billing_name     TEXT,
    billing_email    TEXT,
    issued_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX invoices_customer_id ON invoices (customer_id);

CREATE TABLE payment_methods (
    id          VARCHAR(64) PRIMARY KEY,
    customer_id VARCHAR(64) NOT NULL REFERENCES customers (id),
    brand       TEXT NOT NULL,
    last4       CHAR(4) NOT NULL,
    exp_month   INTEGER NOT NULL,
    exp_year    INTEGER NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX payment_methods_customer_id ON payment_methods (customer_id);
