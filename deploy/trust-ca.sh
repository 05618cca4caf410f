#!/bin/sh
# Entry point of the project's containers in docker-compose.yml: adds the operator's CA
# (deploy/tls/ca.pem, the compose secret cdr-ca) to the system trust store, then runs the command.
# The SQL Server drivers verify the server's certificate against that store: mssql-python through
# OpenSSL, Microsoft's JDBC driver through the JVM's cacerts, which Debian's ca-certificates-java
# hook rebuilds in update-ca-certificates. Kafka's clients read the same file as CDR_KAFKA_SSL_CA_FILE.
set -eu
ca=/run/secrets/cdr-ca
if [ ! -s "$ca" ]; then
    echo "trust-ca.sh: $ca is missing or empty: put the CA's certificate in deploy/tls/ca.pem" >&2
    exit 1
fi
cp "$ca" /usr/local/share/ca-certificates/cdr-operator-ca.crt
update-ca-certificates >/dev/null
exec "$@"
