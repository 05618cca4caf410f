#!/usr/bin/env bash
# Debian packages the local stack needs: PostgreSQL server, a Java runtime (Kafka, Spark),
# Maven (fetches the Kafka and Spark jars from Maven Central), OpenSSL (the local broker's
# certificates), Chromium (browser tests), Kamailio and SIPp (real SIP calls in the tests).
# Installs only what is missing.
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v runuser >/dev/null || need+=(util-linux)
# the local broker's CA and certificate (its SASL_SSL listener)
command -v openssl >/dev/null || need+=(openssl)
# pdftotext: the unit tests read the text of the bills' PDF documents (lib/billing/documents.py)
command -v pdftotext >/dev/null || need+=(poppler-utils)
# headless Chromium: the dashboard's browser test and `make screenshots`
command -v chromium >/dev/null || need+=(chromium)
# Kamailio (the SIP proxy whose acc CDRs collection decodes) and SIPp: the tests place real SIP
# calls through them on 127.0.0.1 (cdr_platform_tests/sip_traffic.py)
command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || need+=(kamailio)
command -v sipp >/dev/null || need+=(sip-tester)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${need[*]}" >&2
    echo "install them with: sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    exit 1
fi
# The project runs its own PostgreSQL cluster; don't let the package start a second one on 5432.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
fi
echo "installing system packages: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
# the package may enable its own Kamailio on port 5060 (systemd hosts): the tests start their own
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now kamailio >/dev/null 2>&1 || true; fi
