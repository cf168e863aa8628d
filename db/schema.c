/*
 * The schema, as the list of migrations that build it. A released
 * migration is never edited: a change to the schema is a new migration
 * appended to the array, and tests/unit/test_db.c migrates a fixture of
 * every released version.
 *
 * Conventions: STRICT tables, so a value of the wrong type is an error
 * instead of being stored as something else; timestamps are INTEGER Unix
 * milliseconds; JSON columns are TEXT checked with json_valid(); rows that
 * belong to a device go away with it (ON DELETE CASCADE), while timeline
 * events outlive the device, job and rollout they mention (ON DELETE SET
 * NULL) because they are the history operators read after the fact. Every
 * foreign key column leads some index, so that deleting a parent does not
 * scan the child table.
 *
 * Values reported by devices (component State, Update Result, Severity...)
 * are stored as received, without range checks: a client that sends an
 * out-of-range value is exactly what fotad must record and show.
 *
 * Each migration runs in one transaction with foreign keys off, so that a
 * later migration may rebuild a table as SQLite documents (CREATE new, copy,
 * DROP old, ALTER TABLE RENAME) without the DROP cascading; db.c runs PRAGMA
 * foreign_key_check before each COMMIT and refuses a migration that leaves
 * a dangling reference.
 */
#include "db/db_int.h"

#include "common/common.h"

static const char migration_1[] =
    /*
     * A device, with its live registration if it has one (at most one):
     * the registration columns, location to expires_at, are set by a
     * Register and cleared when the registration ends. In the device row
     * rather than a table of their own because a Register writes the
     * device row anyway; one row costs one statement and one B-tree.
     *
     * lwm2m_version is that of the last registration. objects holds the
     * object links of the last registration payload (or Update with a
     * payload), in object and instance order, as a JSON array of
     * [object, instance, version]: instance is null for a link to an
     * object without instances (</5>), version is there only when the
     * link has a ver attribute; the device keeps them when it
     * deregisters. lifetime is in seconds; content_format is the ct
     * attribute of the root link as sent (one number or a space-separated
     * list); identity is the DTLS identity the device registered with
     * (PSK identity, certificate subject or key), checked again on Update
     * and De-register.
     */
    "CREATE TABLE devices (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  endpoint TEXT NOT NULL UNIQUE CHECK (endpoint <> ''),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  last_seen_at INTEGER,\n"
    "  lwm2m_version TEXT,\n"
    "  manufacturer TEXT,\n"
    "  model TEXT,\n"
    "  firmware_version TEXT,\n"
    "  objects TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(objects)),\n"
    "  location TEXT CHECK (location <> ''),\n"
    "  lifetime INTEGER CHECK (lifetime > 0),\n"
    "  binding TEXT,\n"
    "  queue_mode INTEGER CHECK (queue_mode IN (0, 1)),\n"
    "  sms_number TEXT,\n"
    "  alt_path TEXT,\n"
    "  content_format TEXT,\n"
    "  peer_addr TEXT,\n"
    /* Not "IN (...)": SQLite checks an IN list of more than two values
     * against a temporary B-tree it builds for every row written. */
    "  security TEXT\n"
    "    CHECK (security = 'nosec' OR security = 'psk' OR security = 'rpk'\n"
    "      OR security = 'x509'),\n"
    "  identity TEXT,\n"
    "  registered_at INTEGER,\n"
    "  updated_at INTEGER,\n"
    "  expires_at INTEGER,\n"
    /* A registration is whole. */
    "  CHECK (location IS NULL OR (lwm2m_version IS NOT NULL\n"
    "    AND lifetime IS NOT NULL AND binding IS NOT NULL\n"
    "    AND queue_mode IS NOT NULL AND peer_addr IS NOT NULL\n"
    "    AND security IS NOT NULL AND registered_at IS NOT NULL\n"
    "    AND updated_at IS NOT NULL AND expires_at IS NOT NULL))\n"
    ") STRICT;\n"

    "CREATE TABLE device_tags (\n"
    "  device_id INTEGER NOT NULL\n"
    "    REFERENCES devices(id) ON DELETE CASCADE,\n"
    "  tag TEXT NOT NULL CHECK (tag <> ''),\n"
    "  PRIMARY KEY (device_id, tag)\n"
    ") STRICT, WITHOUT ROWID;\n"
    /* Rollout targets are chosen by tag. */
    "CREATE INDEX device_tags_tag ON device_tags(tag, device_id);\n"

    /*
     * One updatable component: an instance of 33629 (Advanced Firmware
     * Update) or the single instance of 5 (Firmware Update). The columns
     * mirror resources 3 state, 5 result, 6 pkg_name, 7 pkg_version,
     * 8 protocols (JSON array of integers), 9 delivery_method,
     * 11 severity, 12 last_state_change (converted from the device's
     * seconds to ms), 13 max_defer_period (seconds, as the resource),
     * 14 name, 15 current_version, 16 linked and 17 conflicting (JSON
     * arrays of instance ids). NULL means not read or not supported.
     */
    "CREATE TABLE components (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  device_id INTEGER NOT NULL\n"
    "    REFERENCES devices(id) ON DELETE CASCADE,\n"
    "  object_id INTEGER NOT NULL CHECK (object_id IN (5, 33629)),\n"
    "  instance_id INTEGER NOT NULL\n"
    "    CHECK (instance_id BETWEEN 0 AND 65534),\n"
    "  name TEXT,\n"
    "  current_version TEXT,\n"
    "  state INTEGER,\n"
    "  result INTEGER,\n"
    "  pkg_name TEXT,\n"
    "  pkg_version TEXT,\n"
    "  protocols TEXT CHECK (protocols IS NULL OR json_valid(protocols)),\n"
    "  delivery_method INTEGER,\n"
    "  severity INTEGER,\n"
    "  last_state_change INTEGER,\n"
    "  max_defer_period INTEGER,\n"
    "  linked TEXT CHECK (linked IS NULL OR json_valid(linked)),\n"
    "  conflicting TEXT\n"
    "    CHECK (conflicting IS NULL OR json_valid(conflicting)),\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  UNIQUE (device_id, object_id, instance_id),\n"
    "  CHECK (object_id <> 5 OR instance_id = 0)\n"
    ") STRICT;\n"

    /*
     * An uploaded image. sha256 is lowercase hex; file is the stored
     * image's path relative to the state folder (content-addressed, so
     * rows with the same sha256 share it); filename is the name the
     * upload gave, if any. mcuboot is NULL when the image is not an
     * MCUboot image, else the verdict, explained in mcuboot_detail;
     * mcuboot_version is its header version. forced lets an image whose
     * verdict is 'invalid' be rolled out all the same.
     */
    "CREATE TABLE packages (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  component TEXT NOT NULL CHECK (component <> ''),\n"
    "  version TEXT NOT NULL CHECK (version <> ''),\n"
    "  sha256 TEXT NOT NULL\n"
    "    CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),\n"
    "  size INTEGER NOT NULL CHECK (size >= 0),\n"
    "  file TEXT NOT NULL CHECK (file <> ''),\n"
    "  filename TEXT,\n"
    "  mcuboot TEXT CHECK (mcuboot IN ('valid', 'invalid', 'unsigned')),\n"
    "  mcuboot_detail TEXT,\n"
    "  mcuboot_version TEXT,\n"
    "  forced INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),\n"
    "  download_token TEXT NOT NULL UNIQUE CHECK (download_token <> ''),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  UNIQUE (component, version)\n"
    ") STRICT;\n"
    /* Identical uploads are found by their hash. */
    "CREATE INDEX packages_sha256 ON packages(sha256);\n"
    /* Listings filtered by component, newest first. */
    "CREATE INDEX packages_component ON packages(component, id);\n"

    /*
     * spec is the rollout as the API accepted it (targets, stages, gates,
     * pace, schedule, time-outs, retries), JSON. state belongs to the
     * orchestrator's rollout state machine (created, running, paused,
     * completed, aborted, expired); reason says why it is paused or
     * ended. stage is the cohort in progress (0-based); stage_started_at
     * when it began, stage_done_at when its last job ended (the soak time
     * counts from there). gate_failures and gate_finished are the counted
     * failures and finished members when an operator last resumed it:
     * the failure gate counts from there. gate_passed_stage is the last
     * stage whose success gate an operator overrode by resuming (-1).
     */
    "CREATE TABLE rollouts (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name TEXT,\n"
    "  state TEXT NOT NULL CHECK (state <> ''),\n"
    "  spec TEXT NOT NULL CHECK (json_valid(spec)),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  started_at INTEGER,\n"
    "  finished_at INTEGER,\n"
    "  reason TEXT,\n"
    "  stage INTEGER NOT NULL DEFAULT 0 CHECK (stage >= 0),\n"
    "  stage_started_at INTEGER,\n"
    "  stage_done_at INTEGER,\n"
    "  gate_failures INTEGER NOT NULL DEFAULT 0,\n"
    "  gate_finished INTEGER NOT NULL DEFAULT 0,\n"
    "  gate_passed_stage INTEGER NOT NULL DEFAULT -1\n"
    ") STRICT;\n"
    "CREATE INDEX rollouts_state ON rollouts(state);\n"

    /*
     * The devices of a rollout, each in its cohort (stage) at its place
     * (rank: a hash of rollout id and endpoint, canaries first). state:
     * pending (not started), waiting (pending, device not registered),
     * active (job_id running), retry (again at next_at), succeeded,
     * failed, skipped (reason: up_to_date, no_component, offline...),
     * cancelled. attempts counts the jobs started; gate_class is the
     * failure's class for the gates (download, integrity, install,
     * timeout, rollback, other).
     */
    "CREATE TABLE rollout_devices (\n"
    "  rollout_id INTEGER NOT NULL\n"
    "    REFERENCES rollouts(id) ON DELETE CASCADE,\n"
    "  device_id INTEGER NOT NULL\n"
    "    REFERENCES devices(id) ON DELETE CASCADE,\n"
    "  stage INTEGER NOT NULL CHECK (stage >= 0),\n"
    "  rank INTEGER NOT NULL,\n"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'waiting', 'active',\n"
    "    'retry', 'succeeded', 'failed', 'skipped', 'cancelled')),\n"
    "  attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),\n"
    "  job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,\n"
    "  next_at INTEGER,\n"
    "  failure_class TEXT,\n"
    "  gate_class TEXT,\n"
    "  reason TEXT,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  PRIMARY KEY (rollout_id, device_id)\n"
    ") STRICT, WITHOUT ROWID;\n"
    /* The next devices to start, in cohort order. */
    "CREATE INDEX rollout_devices_next ON rollout_devices(rollout_id, state,\n"
    "  stage, rank);\n"
    "CREATE INDEX rollout_devices_device ON rollout_devices(device_id);\n"
    "CREATE INDEX rollout_devices_job ON rollout_devices(job_id);\n"

    /* A package a live rollout uses cannot be deleted (the repository
     * checks); a finished rollout keeps its package ids in its spec. */
    "CREATE TABLE rollout_packages (\n"
    "  rollout_id INTEGER NOT NULL\n"
    "    REFERENCES rollouts(id) ON DELETE CASCADE,\n"
    "  package_id INTEGER NOT NULL\n"
    "    REFERENCES packages(id) ON DELETE CASCADE,\n"
    "  PRIMARY KEY (rollout_id, package_id)\n"
    ") STRICT, WITHOUT ROWID;\n"
    "CREATE INDEX rollout_packages_package ON rollout_packages(package_id);\n"

    /*
     * One device's update, within a rollout (one job per device, rollout
     * and attempt) or on its own (rollout_id NULL).
     * stage is the rollout cohort; update_result the last Update Result.
     * state belongs to the orchestrator's job state machine; a job is
     * active until finished_at is set, and a device has at most one
     * active job. failure_class says why a job failed or timed out
     * ("integrity", "rollback", "never_came_back"...), detail explains
     * it for people. delivery is how the package reaches the device
     * (coap, coaps, http, https or push). executed_at is when Execute
     * Update went out: it is sent at most once, even across restarts.
     * deadline_at is when the current state times out.
     */
    "CREATE TABLE jobs (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  rollout_id INTEGER REFERENCES rollouts(id) ON DELETE CASCADE,\n"
    "  device_id INTEGER NOT NULL\n"
    "    REFERENCES devices(id) ON DELETE CASCADE,\n"
    "  stage INTEGER CHECK (stage >= 0),\n"
    "  state TEXT NOT NULL CHECK (state <> ''),\n"
    "  attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),\n"
    "  failure_class TEXT,\n"
    "  update_result INTEGER,\n"
    "  detail TEXT,\n"
    "  delivery TEXT CHECK (delivery IN ('coap', 'coaps', 'http', 'https',\n"
    "    'push')),\n"
    "  forced INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  started_at INTEGER,\n"
    "  executed_at INTEGER,\n"
    "  deadline_at INTEGER,\n"
    "  finished_at INTEGER,\n"
    "  download_timeout INTEGER NOT NULL DEFAULT 0,\n"
    "  update_timeout INTEGER NOT NULL DEFAULT 0,\n"
    "  reboot_timeout INTEGER NOT NULL DEFAULT 0,\n"
    "  verify_window INTEGER NOT NULL DEFAULT 0,\n"
    "  max_reboots INTEGER NOT NULL DEFAULT 0\n"
    ") STRICT;\n"
    "CREATE INDEX jobs_rollout_state ON jobs(rollout_id, state);\n"
    "CREATE INDEX jobs_device ON jobs(device_id);\n"
    /* A rollout starts one job per device and attempt. */
    "CREATE UNIQUE INDEX jobs_rollout_device ON jobs(rollout_id, device_id,\n"
    "  attempt) WHERE rollout_id IS NOT NULL;\n"
    /* One active job per device; on restart the orchestrator loads the
     * active jobs through this index and rearms their timers. */
    "CREATE UNIQUE INDEX jobs_active_device ON jobs(device_id)\n"
    "  WHERE finished_at IS NULL;\n"
    "CREATE INDEX jobs_deadline_at ON jobs(deadline_at)\n"
    "  WHERE deadline_at IS NOT NULL;\n"

    /*
     * The components a job updates, and with which package. A component
     * row belongs to its device, so it cascades; the package of an active
     * job cannot be deleted (the repository checks), that of a finished
     * one may be (package_id NULL then). position orders the components as the
     * job was asked for (Execute Update goes to the first). object_id and
     * instance_id are copied from the component; state is the
     * component's step within the job; from_version and start_result are
     * its Current Version and Update Result when the job was created (to
     * tell a rollback and a stale result); result is the last Update
     * Result seen; uri the Package URI written. blocks, bytes and
     * last_block_at are the download progress, saved at each step.
     */
    "CREATE TABLE job_components (\n"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,\n"
    "  component_id INTEGER NOT NULL\n"
    "    REFERENCES components(id) ON DELETE CASCADE,\n"
    "  package_id INTEGER\n"
    "    REFERENCES packages(id) ON DELETE SET NULL,\n"
    "  position INTEGER NOT NULL CHECK (position >= 0),\n"
    "  object_id INTEGER NOT NULL CHECK (object_id IN (5, 33629)),\n"
    "  instance_id INTEGER NOT NULL\n"
    "    CHECK (instance_id BETWEEN 0 AND 65534),\n"
    "  state TEXT,\n"
    "  from_version TEXT,\n"
    "  start_result INTEGER,\n"
    "  result INTEGER,\n"
    "  uri TEXT,\n"
    "  blocks INTEGER NOT NULL DEFAULT 0,\n"
    "  bytes INTEGER NOT NULL DEFAULT 0,\n"
    "  last_block_at INTEGER,\n"
    "  updated_at INTEGER,\n"
    "  PRIMARY KEY (job_id, component_id),\n"
    "  UNIQUE (job_id, position)\n"
    ") STRICT, WITHOUT ROWID;\n"
    "CREATE INDEX job_components_component ON job_components(component_id);\n"
    "CREATE INDEX job_components_package ON job_components(package_id);\n"

    /*
     * The history. AUTOINCREMENT so that ids are never reused and readers
     * can page with "id > last seen". endpoint is copied from the device
     * so that events stay readable after the device row is deleted.
     */
    "CREATE TABLE timeline_events (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  at INTEGER NOT NULL,\n"
    "  type TEXT NOT NULL CHECK (type <> ''),\n"
    "  device_id INTEGER REFERENCES devices(id) ON DELETE SET NULL,\n"
    "  endpoint TEXT,\n"
    "  job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,\n"
    "  rollout_id INTEGER REFERENCES rollouts(id) ON DELETE SET NULL,\n"
    "  data TEXT CHECK (data IS NULL OR json_valid(data))\n"
    ") STRICT;\n"
    "CREATE INDEX timeline_events_device ON timeline_events(device_id, id);\n"
    /* Most events belong to no job or rollout: index only those that do. */
    "CREATE INDEX timeline_events_rollout ON timeline_events(rollout_id, "
    "id) WHERE rollout_id IS NOT NULL;\n"
    "CREATE INDEX timeline_events_job ON timeline_events(job_id, id) "
    "WHERE job_id IS NOT NULL;\n"
    /* No index on at: the retention sweep goes by id (db_events_purge). */

    /*
     * DTLS credentials, provisioned per endpoint before the device ever
     * registers, hence keyed by endpoint rather than by device. identity
     * is what the handshake presents (PSK identity, certificate subject);
     * secret is the PSK; public_key the raw public key or certificate.
     */
    "CREATE TABLE credentials (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  endpoint TEXT NOT NULL UNIQUE CHECK (endpoint <> ''),\n"
    "  type TEXT NOT NULL CHECK (type IN ('psk', 'rpk', 'x509')),\n"
    "  identity TEXT UNIQUE,\n"
    "  secret BLOB,\n"
    "  public_key BLOB,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  CHECK (type <> 'psk' OR (identity IS NOT NULL AND secret IS NOT "
    "NULL)),\n"
    "  CHECK (type <> 'rpk' OR public_key IS NOT NULL)\n"
    ") STRICT;\n"

    /* REST API tokens; only a hash of each token is stored. */
    "CREATE TABLE api_tokens (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  token_hash BLOB NOT NULL UNIQUE,\n"
    "  scope TEXT NOT NULL CHECK (scope IN ('read', 'operator', 'admin')),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  last_used_at INTEGER,\n"
    "  revoked_at INTEGER\n"
    ") STRICT;\n"

    /*
     * Who did what through the API, and when: token_name is copied so
     * that a row stays readable whatever becomes of the token; remote is
     * the client's address; details is what the action needs to be
     * understood (a credential's type, a token's scope), never a secret.
     */
    "CREATE TABLE audit_log (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  at INTEGER NOT NULL,\n"
    "  token_id INTEGER REFERENCES api_tokens(id) ON DELETE SET NULL,\n"
    "  token_name TEXT,\n"
    "  action TEXT NOT NULL CHECK (action <> ''),\n"
    "  target TEXT,\n"
    "  remote TEXT,\n"
    "  details TEXT CHECK (details IS NULL OR json_valid(details))\n"
    ") STRICT;\n"
    "CREATE INDEX audit_log_token ON audit_log(token_id, id);\n"
    "CREATE INDEX audit_log_action ON audit_log(action, id);\n"

    /*
     * Replies to POSTs sent with an Idempotency-Key, replayed when the
     * same token sends the same key to the same resource again. The reply
     * may hold a secret shown once (a new token, a generated key), so it is
     * stored encrypted with a key derived from the caller's own token,
     * which fotad does not keep; request_hash tells a retry from a
     * different request that reuses the key.
     */
    "CREATE TABLE idempotency_keys (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  token_id INTEGER NOT NULL\n"
    "    REFERENCES api_tokens(id) ON DELETE CASCADE,\n"
    "  idem_key TEXT NOT NULL CHECK (idem_key <> ''),\n"
    "  request TEXT NOT NULL,\n"
    "  request_hash BLOB NOT NULL,\n"
    "  status INTEGER NOT NULL,\n"
    "  nonce BLOB NOT NULL,\n"
    "  response BLOB NOT NULL,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  UNIQUE (token_id, idem_key, request)\n"
    ") STRICT;\n"
    "CREATE INDEX idempotency_keys_created_at ON "
    "idempotency_keys(created_at);\n"

    /*
     * Device-management requests that had to wait for a device to wake
     * (queue mode, or no session to reach it yet), with their fate. The
     * request is kept as the REST API received it (op, path, JSON body),
     * so it is re-encoded for the device's content format when sent.
     */
    "CREATE TABLE requests (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  device_id INTEGER NOT NULL\n"
    "    REFERENCES devices(id) ON DELETE CASCADE,\n"
    "  op TEXT NOT NULL,\n"
    "  path TEXT NOT NULL,\n"
    "  body TEXT CHECK (body IS NULL OR json_valid(body)),\n"
    "  state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'done',\n"
    "    'failed', 'expired', 'cancelled')),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  expires_at INTEGER NOT NULL,\n"
    "  sent_at INTEGER,\n"
    "  finished_at INTEGER,\n"
    "  code TEXT,\n"
    "  result TEXT CHECK (result IS NULL OR json_valid(result)),\n"
    "  error TEXT\n"
    ") STRICT;\n"
    "CREATE INDEX requests_device_state ON requests(device_id, state, id);\n"
    "CREATE INDEX requests_state_expires ON requests(state, expires_at);\n"

    /* Values devices pushed with the Send operation (POST /dp). */
    "CREATE TABLE sent_values (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  device_id INTEGER NOT NULL\n"
    "    REFERENCES devices(id) ON DELETE CASCADE,\n"
    "  received_at INTEGER NOT NULL,\n"
    "  content_format INTEGER NOT NULL,\n"
    "  data TEXT NOT NULL CHECK (json_valid(data))\n"
    ") STRICT;\n"
    "CREATE INDEX sent_values_device ON sent_values(device_id, id);\n";

const struct db_migration db_migrations[] = {
    {"initial schema", migration_1},
};

const int db_migrations_count = (int)ARRAY_SIZE(db_migrations);
