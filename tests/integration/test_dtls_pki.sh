#!/bin/sh
# DTLS with certificates: X.509 client certificates checked against the
# configured CA (endpoint = CN, or a stored CN binding), an untrusted
# certificate refused; then raw public keys stored per endpoint.
. "$(dirname "$0")/lib.sh"

command -v "$COAP_CLIENT" >/dev/null || bail "$COAP_CLIENT is required"
command -v openssl >/dev/null || bail "openssl is required to make test keys"

P="$WORK/pki"
mkdir -p "$P"
key() {
  openssl ecparam -name prime256v1 -genkey -noout -out "$P/$1.key" 2>/dev/null
}
# cert NAME CN ISSUER: a certificate for NAME.key signed by ISSUER.
cert() {
  openssl req -new -key "$P/$1.key" -subj "/CN=$2" -out "$P/$1.csr" 2>/dev/null &&
    openssl x509 -req -in "$P/$1.csr" -CA "$P/$3.pem" -CAkey "$P/$3.key" \
      -CAcreateserial -days 2 -out "$P/$1.pem" 2>/dev/null
}
ca() {
  key "$1" &&
    openssl req -x509 -new -key "$P/$1.key" -subj "/CN=$1" -days 2 \
      -out "$P/$1.pem" 2>/dev/null
}
ca ca && ca rogue && key server && cert server fotad-test ca &&
  key dev && cert dev dev-x509 ca && key other && cert other other-cn ca &&
  key evil && cert evil dev-x509 rogue
ok $? "test CA, server and device certificates made"

write_config "dtls_cert_file $P/server.pem" "dtls_key_file $P/server.key" \
  "dtls_ca_file $P/ca.pem"
fotad_start

coaps() {
  "$COAP_CLIENT" -v 6 -B 5 "$@" 2>&1
}
reg() {
  echo "coaps://127.0.0.1:$COAPS_PORT/rd?ep=$1&lt=300&lwm2m=1.1"
}

out=$(coaps -c "$P/dev.pem" -j "$P/dev.key" -C "$P/ca.pem" -m post -t 40 \
  -e '</1/0>,</3/0>' "$(reg dev-x509)")
echo "$out" | grep -q 'c:2.01'
ok $? "a certificate with CN = endpoint registers (2.01)"
"$CURL" -sS -m 10 "$BASE/api/v1/devices/dev-x509" | grep -q '"security":"x509"'
ok $? "the device is shown with security x509"

out=$(coaps -c "$P/other.pem" -j "$P/other.key" -C "$P/ca.pem" -m post -t 40 \
  -e '</1/0>' "$(reg dev-bound)")
echo "$out" | grep -q 'c:4.03'
ok $? "a certificate for another CN gets 4.03"

"$CURL" -sS -m 10 -o /dev/null -X POST \
  -d '{"endpoint":"dev-bound","type":"x509","identity":"other-cn"}' \
  "$BASE/api/v1/credentials"
out=$(coaps -c "$P/other.pem" -j "$P/other.key" -C "$P/ca.pem" -m post -t 40 \
  -e '</1/0>' "$(reg dev-bound)")
echo "$out" | grep -q 'c:2.01'
ok $? "a stored CN binding lets it register that endpoint"

out=$(coaps -c "$P/evil.pem" -j "$P/evil.key" -C "$P/ca.pem" -m post -t 40 \
  -e '</1/0>' "$(reg dev-x509)")
! echo "$out" | grep -q 'c:2.01'
ok $? "a certificate from another CA fails the handshake"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"

# Raw public keys.
openssl pkey -in "$P/server.key" -pubout -out "$P/server.pub" 2>/dev/null
cat "$P/dev.key" >"$P/dev-rpk.pem"
openssl pkey -in "$P/dev.key" -pubout >>"$P/dev-rpk.pem" 2>/dev/null
cat "$P/other.key" >"$P/other-rpk.pem"
openssl pkey -in "$P/other.key" -pubout >>"$P/other-rpk.pem" 2>/dev/null
spki=$(openssl pkey -in "$P/dev.key" -pubout -outform DER 2>/dev/null | base64 -w0)

write_config "dtls_cert_file $P/server.key" "dtls_key_file $P/server.key" \
  "dtls_rpk yes"
fotad_start
out=$("$CURL" -sS -m 10 -w '\n%{http_code}' -X POST \
  -d "{\"endpoint\":\"dev-rpk\",\"type\":\"rpk\",\"public_key\":\"$spki\"}" \
  "$BASE/api/v1/credentials")
echo "$out" | tail -n 1 | grep -qx 201
ok $? "a raw public key is stored for an endpoint"

out=$(coaps -M "$P/dev-rpk.pem" -m post -t 40 -e '</1/0>' "$(reg dev-rpk)")
echo "$out" | grep -q 'c:2.01'
ok $? "the stored raw key registers its endpoint (2.01)"
out=$(coaps -M "$P/dev-rpk.pem" -m post -t 40 -e '</1/0>' "$(reg dev-x)")
echo "$out" | grep -q 'c:4.03'
ok $? "the same key registering another endpoint gets 4.03"
out=$(coaps -M "$P/other-rpk.pem" -m post -t 40 -e '</1/0>' "$(reg dev-rpk)")
! echo "$out" | grep -q 'c:2.01'
ok $? "an unknown raw key fails the handshake"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"
log_clean
ok $? "no sanitizer report"
done_testing
