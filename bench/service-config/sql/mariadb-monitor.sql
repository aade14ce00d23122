-- kolla-ansible's mariadb register.yml: the monitor account healthcheck.sh uses (mariadb/healthcheck.cnf).
-- Run over the unix socket as the mysql account that mariadb-install-db --user=mysql creates.
CREATE USER 'monitor'@'%' IDENTIFIED BY 'monitor-check';
GRANT USAGE, REPLICATION CLIENT ON *.* TO 'monitor'@'%';
