#!/bin/sh
# The REST API over HTTPS (libmicrohttpd with http_tls_cert_file and
# http_tls_key_file), with a self-signed certificate made here: health,
# tokens, an event stream; plain HTTP and an unverified certificate are
# refused; incomplete or broken TLS settings stop fotad with a reason.
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || bail "openssl is required to make a test certificate"

P="$WORK/tls"
mkdir -p "$P"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$P/key.pem" -out "$P/cert.pem" -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1
ok $? "a self-signed certificate for 127.0.0.1"

write_config "http_tls_cert_file $P/cert.pem" "http_tls_key_file $P/key.pem"
fotad_start
BASE="https://127.0.0.1:$HTTP_PORT"
grep -q "listening for HTTPS on 127.0.0.1:0" "$FOTAD_LOG"
ok $? "fotad listens for HTTPS"

out=$("$REAL_CURL" -sS -m 10 --cacert "$P/cert.pem" -w '\n%{http_code}' \
  "$BASE/api/v1/health")
echo "$out" | tail -n 1 | grep -qx 200 && echo "$out" | grep -q '"status":"ok"'
ok $? "health over HTTPS, certificate verified"
out=$("$CURL" -sS -m 10 --cacert "$P/cert.pem" -w '\n%{http_code}' \
  "$BASE/api/v1/devices")
echo "$out" | tail -n 1 | grep -qx 200
ok $? "an authenticated listing over HTTPS"
out=$("$REAL_CURL" -sS -m 10 --cacert "$P/cert.pem" -w '\n%{http_code}' \
  "$BASE/api/v1/devices")
echo "$out" | tail -n 1 | grep -qx 401
ok $? "without a token still 401"
out=$("$CURL" -sS -m 10 --cacert "$P/cert.pem" -w '\n%{http_code}' -X POST \
  -d '{"name":"tls","scope":"read"}' "$BASE/api/v1/tokens")
echo "$out" | tail -n 1 | grep -qx 201
ok $? "a token is created over HTTPS"
"$CURL" -sS -m 10 --cacert "$P/cert.pem" -o /dev/null \
  "$BASE/api/v1/events?format=ndjson&after=0&follow=false"
ok $? "an event stream over HTTPS ends cleanly"

"$REAL_CURL" -sS -m 5 -o /dev/null "$BASE/api/v1/health" 2>/dev/null
[ $? -ne 0 ]
ok $? "an unverifiable certificate is refused by the client"
code=$("$REAL_CURL" -sS -m 5 -o /dev/null -w '%{http_code}' \
  "http://127.0.0.1:$HTTP_PORT/api/v1/health" 2>/dev/null)
[ "$code" != 200 ]
ok $? "plain HTTP on the HTTPS port gets nowhere ($code)"

fotad_stop
ok "$FOTAD_STATUS" "SIGTERM: exit 0"

printf 'http_tls_cert_file %s\n' "$P/cert.pem" >"$WORK/half.conf"
out=$("$FOTAD" --check-config -c "$WORK/half.conf" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q 'http_tls_key_file: required with http_tls_cert_file'
ok $? "a certificate without a key is refused: $out"

echo "not a certificate" >"$P/junk.pem"
write_config "http_tls_cert_file $P/junk.pem" "http_tls_key_file $P/key.pem"
"$FOTAD" -f -c "$WORK/fotad.conf" >"$WORK/junk.out" 2>&1
st=$?
[ $st -eq 1 ] && grep -q "junk.pem: not a PEM file" "$WORK/junk.out"
ok $? "a file that is not PEM stops fotad (exit $st)"
cp "$P/key.pem" "$P/swapped.pem"
write_config "http_tls_cert_file $P/swapped.pem" "http_tls_key_file $P/cert.pem"
"$FOTAD" -f -c "$WORK/fotad.conf" >"$WORK/swap.out" 2>&1
st=$?
[ $st -eq 1 ] && grep -q "cannot listen for HTTPS" "$WORK/swap.out"
ok $? "a certificate and key MHD cannot use stop fotad (exit $st)"

log_clean
ok $? "no sanitizer report"
! grep -qE 'ERROR: (Address|Leak)Sanitizer' "$WORK/junk.out" "$WORK/swap.out"
ok $? "no sanitizer report from the refused starts"
done_testing
