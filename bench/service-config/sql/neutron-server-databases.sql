-- The database and account neutron.conf points at, created over mariadb's unix socket.
CREATE DATABASE neutron;
CREATE USER 'neutron'@'127.0.0.1' IDENTIFIED BY 'neutron-check';
GRANT ALL PRIVILEGES ON neutron.* TO 'neutron'@'127.0.0.1';
