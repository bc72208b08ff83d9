-- Hydra and obdcr share the PostgreSQL server, in databases of their own.
CREATE DATABASE hydra;
