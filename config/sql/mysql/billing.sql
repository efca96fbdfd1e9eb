-- Billing database of the reference deployment (MySQL / MariaDB).
CREATE TABLE customers (
    id            VARCHAR(64) PRIMARY KEY,
    user_id       BIGINT,
    email         VARCHAR(320) NOT NULL,
    name          VARCHAR(255),
    company       VARCHAR(255),
    address_line1 VARCHAR(255),
    city          VARCHAR(128),
    postal_code   VARCHAR(32),
    country       VARCHAR(64),
    tax_id        VARCHAR(64),
    created_at    DATETIME(6) NOT NULL,
    KEY customers_user_id (user_id),
    KEY customers_email (email)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE invoices (
    id               VARCHAR(64) PRIMARY KEY,
    customer_id      VARCHAR(64) NOT NULL,
    number           VARCHAR(64) NOT NULL,
    status           VARCHAR(32) NOT NULL,
    currency         CHAR(3) NOT NULL,
    amount_due_cents BIGINT NOT NULL,
    tax_rate         DECIMAL(5, 2),
    billing_name     VARCHAR(255),
    billing_email    VARCHAR(320),
    issued_at        DATETIME(6) NOT NULL,
    KEY invoices_customer_id (customer_id),
    FOREIGN KEY (customer_id) REFERENCES customers (id)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE payment_methods (
    id          VARCHAR(64) PRIMARY KEY,
    customer_id VARCHAR(64) NOT NULL,
    brand       VARCHAR(32) NOT NULL,
    last4       CHAR(4) NOT NULL,
    exp_month   INT NOT NULL,
    exp_year    INT NOT NULL,
    created_at  DATETIME(6) NOT NULL,
    KEY payment_methods_customer_id (customer_id),
    FOREIGN KEY (customer_id) REFERENCES customers (id)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
