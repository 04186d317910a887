"""`make reliability`: the full fault, load, bad-input and security suite, with a report.

Runs the fast suite (tests/reliability, also part of `make test`) at larger scale -- more fuzz
examples, a bigger flood, 200 simulated devices -- plus the embedded-stack scenarios
(reliability/scenarios), then writes reliability/REPORT.md: scenario / expected / observed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reliability" / "REPORT.md"

# What each scenario must show; the observed column comes from the run.
EXPECTED: dict[str, str] = {
    "test_every_user_has_expectations": "every user in mosquitto/users.txt has an ACL expectation",
    "test_acl_matrix": "each user may publish only its own topic space; reads limited to the bus (PUBACK 0x87 "
                       "for denied publishes, denied topics never delivered)",
    "test_bad_logins_refused": "anonymous, wrong password, unknown user refused (CONNACK 0x86/0x87)",
    "test_embedded_demo_anonymous_is_read_only": "embedded demo: anonymous may read the bus (not commands or reply "
                                                 "inboxes) and homeassistant/#, publish nothing",
    "test_client_ids_live_in_the_account_namespace": "a service's client id starts with its login's name "
                                                     "(admin running it: admin-...), tagged with the account's secret",
    "test_takeover_of_the_writer_is_refused":
        "sml-reader (right password) or an anonymous demo client with the writer's exact ids (main, -ingest, bare "
        "account name), clean and persistent sessions, writer offline and online: CONNACK 0x87 each, the writer gets "
        "all 50 queued readings and stays connected, one log line per refusal with user and id, no password (was: "
        "writer kicked, 122 readings in 10 s delivered to the intruder)",
    "test_a_service_account_keeps_to_its_own_ids": "sml-reader may use sml-reader and sml-reader-*, not ids outside "
                                                   "(0x87, logged once); anonymous demo clients keep random ids",
    "test_writer_replicas_with_distinct_ids_connect": "3 influx-writer replicas (host-name instances) with their "
                                                      "ingest connections: all connected at once, none kicked",
    "test_own_id_with_a_wrong_password_is_refused": "the writer's own id with a wrong password: refused by the "
                                                    "password check (the plugin only defers), the writer stays",
    "test_demo_and_compose_bind_ids_to_the_same_accounts": "mosquitto.conf and the demo broker load the plugin with "
                                                           "users.txt's accounts",
    "test_a_bad_accounts_file_stops_the_broker_with_a_clear_error": "missing, malformed or empty accounts file: the "
                                                                    "broker does not start, the log names the file "
                                                                    "and line",
    "test_reload_reads_the_accounts_again": "SIGHUP re-reads the accounts file: a new account's ids are reserved",
    "test_forged_command_result_is_not_taken": "command to a hung bridge: sml-reader and anonymous see no command "
                                               "(no correlation data); forged `ok` answers in the http-api's inbox "
                                               "-> request times out (was: 200 ok); homeassistant may not write an "
                                               "inbox (0x87); the addressee's real answer -> ok",
    "test_anonymous_demo_client_reads_no_commands_or_replies": "demo anonymous client: device/service/loadpoint/"
                                                               "discovery commands and reply inboxes never delivered, "
                                                               "publishing there 0x87; readings and states delivered",
    "test_oversized_packet_is_refused_without_affecting_others": "a packet over max_packet_size (1 MiB): sender "
                                                                 "disconnected, nothing delivered; half the limit "
                                                                 "delivered; a bystander stays connected; the account "
                                                                 "logs in again",
    "test_demo_and_compose_enforce_the_same_limits": "the demo broker carries mosquitto.conf's limit lines "
                                                     "(max_connections after its listener)",
    "test_tls_listener": "TLS listener (tls.conf.example) accepts the right CA, refuses other CA, plain MQTT and "
                         "anonymous; ACL holds over TLS",
    "test_seeds_present_and_decodable": "fuzz seeds are real captures that decode",
    "test_seeds_are_real_captures": "fuzz seeds are real captures that decode",
    "test_damaged_stream_never_raises": "damaged SML/DSMR/IEC streams in random chunks: FrameError items only",
    "test_random_bytes_give_frame_errors_only": "random bytes: FrameError items only",
    "test_sml_content_with_good_crc_gives_frame_error_only": "SML garbage with a valid CRC: FrameError only",
    "test_sml_unsupported_choice_frame_is_a_frame_error": "the CRC-valid SML frame the fuzzer found: FrameError",
    "test_dsmr_decoder_raises_frame_error_only": "damaged DSMR telegrams: FrameError only",
    "test_iec_decoder_raises_frame_error_only": "damaged IEC readouts: FrameError only",
    "test_endless_garbage_keeps_buffers_bounded": "800 kB of noise: framer buffer stays bounded",
    "test_ecu_answers_raise_ecu_frame_error_only": "damaged ECU answers: EcuFrameError only",
    "test_ecu_random_bytes": "random bytes to the ECU decoder: EcuFrameError",
    "test_giv_frames_raise_frame_error_only": "damaged GivEnergy frames: FrameError only",
    "test_giv_stream_reassembly_never_raises_and_stays_bounded": "damaged GivEnergy TCP stream: no raise, "
                                                                 "bounded buffer",
    "test_giv_register_maps_decode_any_register_values": "any register values decode through every register map",
    "test_sunspec_decode_and_mapping": "random SunSpec model blocks: no crash; readings valid on the bus",
    "test_goe_status_raises_response_rejected_only": "damaged go-e JSON: ResponseRejected naming the URL; "
                                                     "readings valid on the bus",
    "test_shelly_status_raises_response_rejected_only": "damaged Shelly JSON: ResponseRejected naming the URL",
    "test_shelly_identity_raises_response_rejected_only": "damaged /shelly identity: ResponseRejected",
    "test_service_config_sections": "random config sections for every service: ConfigError naming the section",
    "test_bus_section_and_environment": "random [bus] values and env overrides: ConfigError",
    "test_config_files": "random config file text: ConfigError naming the file",
    "test_config_file_not_utf8": "config file that is not UTF-8: ConfigError naming the file",
    "test_unreadable_config_file": "config file that is not UTF-8: ConfigError naming the file",
    "test_payloads_raise_payload_error_only": "damaged bus payloads (UTF-8): PayloadError; accepted ones round-trip",
    "test_payload_not_utf8": "bus payload with invalid UTF-8: PayloadError",
    "test_command_limits_are_part_of_the_contract": "SetChargeCurrent outside 6-32 A never decodes",
    "test_rogue_commands_refused_with_reason": "rogue 80 A -> invalid, 20 A on a 16 A charger -> refused with the "
                                               "reason; device never written; no-rights user gets 0x87",
    "test_resent_command_is_not_applied_twice": "the same command twice writes the device once",
    "test_redelivered_command_after_broker_kill_is_answered_not_executed":
        "a QoS 1 command re-sent with DUP (same packet id) after a broker SIGKILL + restart, and two deliveries "
        "while the first executes: answered with the first result, the go-e simulator written once; a stale "
        "10 A never replaces the newer 12 A",
    "test_sender_sigkilled_mid_stream_replays_without_double_execution":
        "commanding client SIGKILLed mid-stream replays its outbox after the restart: every request id "
        "reaches the device exactly once (simulator set count), replays counted as commands_duplicate",
    "test_influx_down_briefly_loses_nothing": "InfluxDB stopped ~10 s mid-stream (make test variant): "
                                              "published = stored, exactly",
    "test_bridge_and_writer_follow_a_stepped_wall_clock":
        "wall clock stepped +1 h and -1 h (libfaketime) under the go-e bridge and influx-writer: polling goes "
        "on, readings stamped with the new wall time and stored under it",
    "test_controller_staleness_ignores_wall_clock_steps":
        "surplus-controller under a wall clock stepped +1 h: no stale alert while readings flow; stepped -1 h "
        "with the meter silent: stale alert and safe state within stale_after_s",
    "test_every_service_has_a_flood_config": "every service in services/ is covered by the flood",
    "test_malformed_flood_on_every_subscribed_topic":
        "malformed flood (bad JSON, wrong kind, invalid UTF-8, 512 KiB) on every topic each service subscribes "
        "to (from the broker's SUBSCRIBE log): all received, rejections counted, good reload_config answered, "
        "heartbeat on, no handler errors, RSS growth < 64 MiB",
    "test_http_bodies_never_crash_the_api":
        "hypothesis bodies on every documented http-api write (token set): 4xx JSON error naming the field, "
        "5xx only as an explained 502/503/504, never a dropped connection",
    "test_givtcp_range_error_names_the_givtcp_field": "a GivTCP value out of range: 400 naming the GivTCP field",
    "test_meterhub_push_with_a_control_character_key": "MeterHub push with a control-character key: 4xx answer",
    "test_atheris_finds_no_crash": "atheris (coverage-guided, seeded with real captures): N inputs, no crash",
    "test_device_hangs_then_vanishes_then_returns": "device hangs, then answers garbage, then vanishes -> offline, "
                                                    "rejections counted, other device and service unaffected, "
                                                    "back online when it returns",
    "test_broker_killed_mid_stream": "broker SIGKILL + restart: bridge reconnects, retained state back, "
                                     "readings and commands flow",
    "test_malformed_flood_on_command_topic": "flood of malformed commands: all counted invalid, service up, "
                                             "memory bounded, good command still confirmed",
    "test_many_devices_one_bridge": "many simulated go-e chargers polled at 1 Hz by one bridge: every device "
                                    "keeps reading, bridge stays up",
    "test_not_utf8_command_does_not_deafen_a_service": "one non-UTF-8 command: bridge still answers the next "
                                                       "(regression, fixed in b4c689c)",
    "test_service_sigkill_restarted_with_state": "embedded stack: SIGKILL a bridge -> last will offline, "
                                                 "supervisord restart, metas and readings back",
    "test_writes_without_token_are_401": "every http-api write endpoint (REST, GivTCP, MeterHub) without or with a "
                                         "wrong token -> 401 JSON error, nothing on the bus; reads open",
    "test_influx_down_and_writer_killed_loses_nothing": "InfluxDB down for minutes at 50 readings/s, influx-writer "
                                                        "SIGKILLed during the outage: loss = 0",
    "test_network_serial_bridge_drops": "ser2net-style socket:// bridge drops (RST, port closed): meter offline, "
                                        "sml-reader alive, readings resume when it returns",
    "test_broker_sigkill_bridges_reconnect": "embedded stack: SIGKILL mosquitto -> restarted, every bridge "
                                             "reconnects and publishes again",
    # Issue #21: the http-api and integrations against a hostile LAN, web page and device (was -> now).
    "test_config_reads_need_the_token_and_never_show_a_secret":
        "GET /api/v1/setup, /sections, /devices from another address: 401 without or with a wrong token; with it, "
        "every password, the write token and the ECU wifi password show as \"set\", no value anywhere in the answer "
        "(was: served without a token); live reads stay open",
    "test_a_problem_message_never_carries_a_secret": "an invalid secret: the section's problem names the key, "
                                                     "never the value",
    "test_set_keeps_each_stored_secret_and_no_secret_follows_a_new_address":
        "PUT with \"set\" keeps each stored secret, also with devices reordered; a changed url/host/port with a "
        "kept secret (or secret file) -> 400 naming the key, file unchanged; with the secret given again it saves",
    "test_dns_rebinding_chain_is_refused":
        "PUT [http-api] with Host rebind.evil.example:8008 -> 421 (was 200); trusted_networks = [\"0.0.0.0/0\"], "
        "token, token_file, allowed_hosts -> 400 even with the token; file bytes unchanged; another address "
        "still needs the token",
    "test_paths_urls_and_the_bus_section_are_not_settable":
        "config_file, *_file, *_dir, template_files, state_file, file:// or /etc paths as a meter port -> 400 "
        "naming the key; [bus] -> 403; file bytes unchanged, nothing created (was: any path written)",
    "test_a_kept_path_and_a_serial_device_stay_settable": "a path kept as stored, /dev/ and socket:// ports save",
    "test_a_device_added_by_hand_cannot_name_a_file": "wizard serial port /etc/passwd, a link to it, /dev/../etc "
                                                      "-> 400, also with save_anyway",
    "test_cross_site_writes_and_get_side_effects_are_refused":
        "trusted browser, other site: POST / text/plain -> 415, with its Origin -> 403 (was 200); GET "
        "/command/discovery?command=rescan -> 405 (was 200); form, Origin null, Sec-Fetch-Site cross-site refused; "
        "nothing on the bus; the same-origin write still reaches it",
    "test_deep_json_is_400_not_a_recursion_error": "\"[\"*1100+\"]\"*1100 on 5 JSON endpoints -> 400 naming the "
                                                   "depth limit (was 500 RecursionError)",
    "test_wrong_tokens_are_throttled_per_address_without_locking_out_the_user":
        "2000 wrong tokens from one address: the burst checked (401), the rest 429 + Retry-After unchecked "
        "(was: all checked in 1.9 s); the right token from another address works at once, from this one after the "
        "refill; 2 log lines",
    "test_slow_headers_and_bodies_time_out": "unfinished headers: connection closed after header_timeout_s; "
                                             "unfinished body: 408 after body_timeout_s",
    "test_refusals_of_every_kind_are_logged_once_per_interval": "800 refusals of 4 kinds: at most one line per kind "
                                                                "and interval, then the count left out",
    "test_slowloris_does_not_starve_a_normal_request":
        "1100 slow partial requests, 1100 more while in use, http-api at 1024 open files: normal requests < 1 s, "
        "no Too many open files, log < 64 KB (was: all requests timing out for 85 s, 257 MB of log in 90 s)",
    "test_event_streams_cannot_fill_the_connection_cap": "event streams: 8 per address (429), a quarter of the "
                                                         "slots (503), requests still served",
    "test_topic_problem_names_what_is_wrong": "rendered topics: empty, $, + #, CR/LF, NUL, DEL, C1, surrogates, "
                                              "> 65535 bytes -> named problem",
    "test_a_bad_rendered_topic_is_refused_and_the_connection_stays":
        "integrations rule rendering CR/LF, #, + or NUL from device names: refused, counted, logged once; no "
        "disconnect, every good message delivered (was: connection dropped on each reading, malformed packet)",
}

SCALE = {"WATTBUS_FUZZ_SCALE": "8", "WATTBUS_FLOOD": "10000", "WATTBUS_MANY_DEVICES": "200",
         "WATTBUS_OUTAGE_S": "120", "WATTBUS_LOAD_S": "30", "WATTBUS_FLOOD_PER_TOPIC": "400",
         "WATTBUS_ATHERIS_RUNS": "10000"}


@dataclass
class Row:
    scenario: str
    expected: str
    outcome: str
    observed: str
    seconds: float


# The attacks of issue #21 on the http-api and integrations (they also run in `make test`).
SECURITY = ["tests/http_api/test_security_setup.py", "tests/http_api/test_security_requests.py",
            "tests/http_api/test_security_load.py", "tests/integrations/test_topic_guard.py"]


def run_pytest(junit: Path, paths: list[str]) -> int:
    env = {**os.environ, **SCALE, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
           f"--junitxml={junit}", "--timeout=900", *paths]
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


def rows_from(junit: Path) -> list[Row]:
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "?")
        base = name.split("[", 1)[0]
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        figures = ", ".join(f"{k}={v}" for k, v in props.items())
        outcome, note = "pass", ""
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is not None:
                outcome, note = "FAIL", (node.get("message") or "").splitlines()[0][:300]
        skipped = case.find("skipped")
        if skipped is not None:
            kind = skipped.get("type", "")
            outcome = "FAIL (known bug)" if "xfail" in kind else "skipped"
            note = (skipped.get("message") or "")[:400]
        observed = "; ".join(x for x in (figures, note) if x) or ("as expected" if outcome == "pass" else "")
        rows.append(Row(name, EXPECTED.get(base, "(see test docstring)"), outcome, observed,
                        float(case.get("time", "0"))))
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| scenario | expected | observed | s |", "|---|---|---|---|"]
    for r in rows:
        observed = f"**{r.outcome}**" + (f": {r.observed}" if r.observed else "")
        lines.append(f"| {r.scenario} | {r.expected} | {observed.replace('|', '/')} | {r.seconds:.1f} |")
    return "\n".join(lines)


def main() -> int:
    out = ROOT / "reliability" / ".out"
    out.mkdir(exist_ok=True)
    started = time.monotonic()
    fast, stack = out / "fast.xml", out / "stack.xml"
    codes = [run_pytest(fast, ["tests/reliability", *SECURITY]), run_pytest(stack, ["reliability/scenarios"])]
    rows = [r for xml in (fast, stack) if xml.exists() for r in rows_from(xml)]
    passed = sum(r.outcome == "pass" for r in rows)
    known = sum(r.outcome.startswith("FAIL (known") for r in rows)
    failed = sum(r.outcome == "FAIL" for r in rows)
    scale = ", ".join(f"{k}={v}" for k, v in SCALE.items())
    REPORT.write_text(f"""# wattbus reliability and security report

Generated by `make reliability` (`reliability/run.py`) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
in {time.monotonic() - started:.0f} s. Scale: {scale}.
Result: {passed} pass, {known} fail (known bugs, listed below), {failed} fail (new), {len(rows)} scenarios.

{table(rows)}

Known bugs are strict xfail tests: they start failing the suite as soon as the bug is fixed, so the
marker gets removed with the fix.
""")
    print(REPORT.read_text())
    return 0 if failed == 0 and all(c in (0, 1) for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
