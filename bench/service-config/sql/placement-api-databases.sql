-- The database and account placement.conf points at, created over mariadb's unix socket.
CREATE DATABASE placement;
CREATE USER 'placement'@'127.0.0.1' IDENTIFIED BY 'placement-check';
GRANT ALL PRIVILEGES ON placement.* TO 'placement'@'127.0.0.1';
