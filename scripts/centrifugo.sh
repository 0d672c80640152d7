# centrifugo.sh — sourced by the scripts that run Centrifugo beside imgate in the same run
# (bench-compare.sh, bench-groups.sh); not run on its own.

# centrifugo_config FILE PORT SECRET NAMESPACE: write Centrifugo v6's config to FILE: memory
# engine, HTTP on 127.0.0.1:PORT, HMAC tokens with SECRET, one channel namespace whose
# channels any client may subscribe and publish to.
centrifugo_config() {
	cat >"$1" <<EOC
{
  "http_server": {"address": "127.0.0.1", "port": $2},
  "log": {"level": "error"},
  "engine": {"type": "memory"},
  "usage_stats": {"disabled": true},
  "client": {"token": {"hmac_secret_key": "$3"}},
  "channel": {"namespaces": [
    {"name": "$4", "allow_subscribe_for_client": true, "allow_publish_for_client": true}
  ]}
}
EOC
}

# listening PORT: whether something listens on TCP PORT.
listening() { ss -Hltn "sport = :$1" | grep -q .; }
