/*
 * wattbus_client_ids: a Mosquitto 2.0 broker plugin (plugin API v5) that binds MQTT client ids to
 * broker accounts (issue 21, attack 5: client-id takeover).
 *
 * Why: Mosquitto lets any login take any client id, and a new connection with an id in use kicks
 * the old one off and, with a persistent session, inherits that session's subscriptions and queued
 * messages (the influx-writer's zero-loss queue went to an intruder). Nothing shipped with Mosquitto
 * 2.0 binds ids per account:
 *   - clientid_prefixes is one prefix for every client of the broker;
 *   - use_username_as_clientid allows one connection per account, but `--scale influx-writer=3`
 *     runs three writers on one account (and the writer keeps a second, "-ingest" connection);
 *   - the dynamic-security plugin binds one exact id to a client entry, while replicas take their
 *     ids from their host names, which are not known in advance;
 *   - third-party auth plugins (mosquitto-go-auth and the like) take over the password and ACL
 *     checks with backends of their own; we need one rule next to Mosquitto's own password_file
 *     and acl_file, which stay as they are (make-passwords.sh, the shipped ACL and its tests).
 *
 * The rule. With `plugin_opt_accounts_file` naming the broker's account list (mosquitto/users.txt:
 * one name a line, `#` comments), an account's namespace is its name and every id starting with
 * "<name>-". An id belongs to the longest listed account whose namespace holds it, so "goe" and
 * "goe-shelly-bridge" may both be accounts. Then
 *   - an authenticated user U may use an id of its own namespace only ("U" or "U-..."), never one
 *     that belongs to another account;
 *   - an anonymous client (the embedded demo admits read-only ones) may use any id that belongs to
 *     no account;
 *   - an account listed in `plugin_opt_free_accounts` (space separated; the test suite's admin)
 *     may use any id that belongs to no other account.
 *
 * How it combines with password_file (Mosquitto 2.0.11, src/security.c mosquitto_unpwd_check and
 * src/security_default.c): every MOSQ_EVT_BASIC_AUTH callback is asked in the order registered and
 * the first answer that is not MOSQ_ERR_PLUGIN_DEFER decides. Plugins register theirs in
 * mosquitto_plugin_init, before mosquitto_security_init_default registers the password_file check,
 * so this plugin is asked first. It therefore answers MOSQ_ERR_AUTH (CONNACK "not authorised")
 * for an id the login may not use, whatever the password, and MOSQ_ERR_PLUGIN_DEFER otherwise,
 * never MOSQ_ERR_SUCCESS: that would skip the password check, and a right id with a wrong password
 * would get in. Anonymous clients: the password_file check defers for them, and with every callback
 * deferring the broker applies allow_anonymous, as before.
 * Not covered: TLS listeners with use_identity_as_username/use_subject_as_username, for which the
 * broker asks no basic-auth callback (wattbus' tls.conf.example uses passwords).
 *
 * Each refusal is logged once (notice level) with the account, the id and the client's address,
 * never the password; more than LOG_BURST refusals within LOG_WINDOW_S seconds are counted and
 * reported as one line when the window ends, so a client retrying in a loop cannot flood the log.
 * SIGHUP (the broker's config reload) re-reads the accounts file; a file that became unreadable
 * keeps the previous list and is reported.
 */
#define _POSIX_C_SOURCE 200809L  /* strdup, strndup */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define PLUGIN "wattbus-client-ids"
#define MAX_NAME 128      /* longer account names are refused at start: no real account needs more */
#define MAX_LOGGED_ID 96  /* an id in a log line is cut here: ids are attacker-chosen (up to 64 KB) */
#define LOG_BURST 20
#define LOG_WINDOW_S 10

struct names {
	char **items;
	size_t count;
};

struct state {
	mosquitto_plugin_id_t *identifier;
	char *accounts_file;
	struct names accounts;
	struct names free_accounts;
	time_t window_start;
	unsigned logged;
	unsigned suppressed;
};

static void names_free(struct names *names)
{
	for(size_t i = 0; i < names->count; i++){
		free(names->items[i]);
	}
	free(names->items);
	names->items = NULL;
	names->count = 0;
}

static bool valid_name(const char *name, size_t len)
{
	if(len == 0 || len > MAX_NAME){
		return false;
	}
	for(size_t i = 0; i < len; i++){
		unsigned char c = (unsigned char)name[i];
		if(c <= ' ' || c >= 0x7f || c == '#' || c == '+' || c == '/'){
			return false;
		}
	}
	return true;
}

static int names_add(struct names *names, const char *name, size_t len)
{
	char *copy = strndup(name, len);
	char **grown;

	if(copy == NULL){
		return MOSQ_ERR_NOMEM;
	}
	grown = realloc(names->items, (names->count + 1) * sizeof(char *));
	if(grown == NULL){
		free(copy);
		return MOSQ_ERR_NOMEM;  /* names->items is untouched: names_free still frees it */
	}
	grown[names->count] = copy;
	names->items = grown;
	names->count++;
	return MOSQ_ERR_SUCCESS;
}

/* The accounts of `path` (users.txt: a name a line, blank lines and `#` comments skipped). */
static int read_accounts(const char *path, struct names *out)
{
	char line[MAX_NAME + 64];
	unsigned lineno = 0;
	int rc = MOSQ_ERR_SUCCESS;
	FILE *file = fopen(path, "r");

	if(file == NULL){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": cannot read plugin_opt_accounts_file %s: %s",
				path, strerror(errno));
		return MOSQ_ERR_INVAL;
	}
	while(rc == MOSQ_ERR_SUCCESS && fgets(line, sizeof(line), file) != NULL){
		char *start = line;
		size_t len = strlen(line);
		lineno++;
		if(len == sizeof(line) - 1 && line[len - 1] != '\n' && !feof(file)){
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": %s line %u: longer than %d characters",
					path, lineno, MAX_NAME);
			rc = MOSQ_ERR_INVAL;
			break;
		}
		while(*start == ' ' || *start == '\t') start++;
		len = strlen(start);
		while(len > 0 && (start[len - 1] == '\n' || start[len - 1] == '\r'
					|| start[len - 1] == ' ' || start[len - 1] == '\t')){
			len--;
		}
		if(len == 0 || start[0] == '#'){
			continue;
		}
		if(!valid_name(start, len)){
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": %s line %u: not an account name (one name a "
					"line, at most %d printable characters, no spaces, '#', '+' or '/')",
					path, lineno, MAX_NAME);
			rc = MOSQ_ERR_INVAL;
			break;
		}
		rc = names_add(out, start, len);
	}
	if(rc == MOSQ_ERR_SUCCESS && ferror(file)){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": reading %s failed", path);
		rc = MOSQ_ERR_INVAL;
	}
	fclose(file);
	if(rc == MOSQ_ERR_SUCCESS && out->count == 0){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": %s names no account: no client id would be "
				"bound to one", path);
		rc = MOSQ_ERR_INVAL;
	}
	if(rc != MOSQ_ERR_SUCCESS){
		names_free(out);
	}
	return rc;
}

/* The space separated names of plugin_opt_free_accounts. */
static int read_free_accounts(const char *value, struct names *out)
{
	const char *p = value;
	while(*p){
		size_t len;
		while(*p == ' ' || *p == '\t') p++;
		len = strcspn(p, " \t");
		if(len == 0) break;
		if(!valid_name(p, len)){
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": plugin_opt_free_accounts: '%.*s' is not an "
					"account name", (int)(len > MAX_NAME ? MAX_NAME : len), p);
			return MOSQ_ERR_INVAL;
		}
		if(names_add(out, p, len) != MOSQ_ERR_SUCCESS) return MOSQ_ERR_NOMEM;
		p += len;
	}
	return MOSQ_ERR_SUCCESS;
}

static bool in_namespace(const char *id, const char *account)
{
	size_t len = strlen(account);
	return strncmp(id, account, len) == 0 && (id[len] == '\0' || id[len] == '-');
}

/* The listed account an id belongs to: the longest one whose namespace holds it, or NULL. */
static const char *owner_of(const struct state *st, const char *id)
{
	const char *owner = NULL;
	for(size_t i = 0; i < st->accounts.count; i++){
		const char *account = st->accounts.items[i];
		if(in_namespace(id, account) && (owner == NULL || strlen(account) > strlen(owner))){
			owner = account;
		}
	}
	return owner;
}

static bool listed(const struct names *names, const char *name)
{
	for(size_t i = 0; i < names->count; i++){
		if(strcmp(names->items[i], name) == 0) return true;
	}
	return false;
}

/* `text` for a log line: printable ASCII as it is, anything else as \xNN, cut at MAX_LOGGED_ID. */
static void loggable(const char *text, char *out, size_t size)
{
	size_t n = 0;
	for(const unsigned char *p = (const unsigned char *)text; *p && n + 8 < size; p++){
		if(p - (const unsigned char *)text >= MAX_LOGGED_ID){
			memcpy(out + n, "...", 3);
			n += 3;
			break;
		}
		if(*p >= ' ' && *p < 0x7f && *p != '\'' && *p != '\\'){
			out[n++] = (char)*p;
		}else{
			n += (size_t)snprintf(out + n, size - n, "\\x%02x", *p);
		}
	}
	out[n] = '\0';
}

static void log_refusal(struct state *st, const struct mosquitto *client, const char *user,
		const char *id, const char *owner)
{
	char safe_id[MAX_LOGGED_ID * 4 + 8];
	char safe_user[MAX_LOGGED_ID * 4 + 8];
	const char *address = mosquitto_client_address(client);
	time_t now = time(NULL);

	if(now - st->window_start >= LOG_WINDOW_S){
		if(st->suppressed > 0){
			mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN ": %u more client id refusals in %d s were "
					"not logged one by one", st->suppressed, LOG_WINDOW_S);
		}
		st->window_start = now;
		st->logged = 0;
		st->suppressed = 0;
	}
	if(st->logged >= LOG_BURST){
		st->suppressed++;
		return;
	}
	st->logged++;
	loggable(id, safe_id, sizeof(safe_id));
	if(user == NULL){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN ": refused client id '%s' for an anonymous client "
				"from %s: it belongs to account '%s'", safe_id, address ? address : "?", owner);
		return;
	}
	loggable(user, safe_user, sizeof(safe_user));
	if(owner != NULL){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN ": refused client id '%s' for user '%s' from %s: "
				"it belongs to account '%s'", safe_id, safe_user, address ? address : "?", owner);
	}else{
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN ": refused client id '%s' for user '%s' from %s: "
				"the account may only use '%s' or ids starting with '%s-'", safe_id, safe_user,
				address ? address : "?", safe_user, safe_user);
	}
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct state *st = userdata;
	const char *id = mosquitto_client_id(ed->client);
	const char *user = ed->username;
	const char *owner;
	bool allowed;

	(void)event;
	if(id == NULL){
		return MOSQ_ERR_AUTH;  /* the broker sets an id (its own for an empty one) before asking */
	}
	owner = owner_of(st, id);
	if(user == NULL){
		allowed = owner == NULL;
	}else if(owner != NULL){
		allowed = strcmp(owner, user) == 0;
	}else{
		allowed = in_namespace(id, user) || listed(&st->free_accounts, user);
	}
	if(allowed){
		return MOSQ_ERR_PLUGIN_DEFER;  /* the password_file check decides: see the header */
	}
	log_refusal(st, ed->client, user, id, owner);
	return MOSQ_ERR_AUTH;
}

static int on_reload(int event, void *event_data, void *userdata)
{
	struct state *st = userdata;
	struct names fresh = {NULL, 0};

	(void)event;
	(void)event_data;
	if(read_accounts(st->accounts_file, &fresh) != MOSQ_ERR_SUCCESS){
		mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN ": reload: keeping the %zu accounts read before",
				st->accounts.count);
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	names_free(&st->accounts);
	st->accounts = fresh;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN ": reload: %zu accounts from %s", st->accounts.count,
			st->accounts_file);
	return MOSQ_ERR_PLUGIN_DEFER;  /* let the other plugins' reload callbacks run too */
}

static void state_free(struct state *st)
{
	if(st == NULL) return;
	names_free(&st->accounts);
	names_free(&st->free_accounts);
	free(st->accounts_file);
	free(st);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	struct state *st = calloc(1, sizeof(*st));
	int rc = MOSQ_ERR_SUCCESS;

	if(st == NULL) return MOSQ_ERR_NOMEM;
	st->identifier = identifier;
	for(int i = 0; i < option_count && rc == MOSQ_ERR_SUCCESS; i++){
		if(strcmp(options[i].key, "accounts_file") == 0){
			free(st->accounts_file);
			st->accounts_file = strdup(options[i].value);
			if(st->accounts_file == NULL) rc = MOSQ_ERR_NOMEM;
		}else if(strcmp(options[i].key, "free_accounts") == 0){
			rc = read_free_accounts(options[i].value, &st->free_accounts);
		}else{
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": unknown option plugin_opt_%s (known: "
					"plugin_opt_accounts_file, plugin_opt_free_accounts)", options[i].key);
			rc = MOSQ_ERR_INVAL;
		}
	}
	if(rc == MOSQ_ERR_SUCCESS && st->accounts_file == NULL){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN ": plugin_opt_accounts_file is required (the broker's "
				"account list, e.g. users.txt)");
		rc = MOSQ_ERR_INVAL;
	}
	if(rc == MOSQ_ERR_SUCCESS) rc = read_accounts(st->accounts_file, &st->accounts);
	if(rc == MOSQ_ERR_SUCCESS){
		rc = mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, st);
	}
	if(rc == MOSQ_ERR_SUCCESS){
		rc = mosquitto_callback_register(identifier, MOSQ_EVT_RELOAD, on_reload, NULL, st);
		if(rc != MOSQ_ERR_SUCCESS){
			mosquitto_callback_unregister(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
		}
	}
	if(rc != MOSQ_ERR_SUCCESS){
		state_free(st);
		return rc;
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN ": client ids bound to %zu accounts from %s",
			st->accounts.count, st->accounts_file);
	*userdata = st;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	struct state *st = userdata;

	(void)options;
	(void)option_count;
	if(st == NULL) return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(st->identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(st->identifier, MOSQ_EVT_RELOAD, on_reload, NULL);
	state_free(st);
	return MOSQ_ERR_SUCCESS;
}
