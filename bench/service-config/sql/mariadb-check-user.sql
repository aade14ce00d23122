-- Run over the unix socket as the mysql account that mariadb-install-db --user=mysql creates
-- (unix_socket authentication), then used by the TCP client on 127.0.0.1:3306.
CREATE USER 'check'@'127.0.0.1' IDENTIFIED BY 'service-check';
GRANT SELECT ON *.* TO 'check'@'127.0.0.1';
