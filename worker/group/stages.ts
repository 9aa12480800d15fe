/**
 * Builds a group's pipeline stages (docs/architecture.md) and wires each to
 * the narrow host interface it needs: the other stages it talks to, the
 * group's name and the Scheduler, whose tasks it registers here. GroupHub.ts
 * routes lifecycle events and RPC to what this returns.
 *
 * In-memory caches, all of which may be lost at any time (hibernation,
 * eviction, restart), and how they come back:
 * - connections: which peer or dashboard is on each socket, and whether a peer's socket was replaced or revoked,
 *   re-read from the socket's attachment on first use (so an ended socket never comes back as valid).
 * - group commit: the highest seq per peer, re-read from SQLite; pending batches were never acked, so peers resend them.
 * - rate limit buckets: start full again (a peer may briefly send more, never loses anything).
 * - work budgets (ingest/work.ts), per peer and the group's: start full again, and a socket's out-of-step
 *   mark after a dropped frame is forgotten, as a readings-limit block is; a client that follows the protocol
 *   has reconnected long before the object can hibernate (it is told to, and its later frames are dropped).
 * - cardinality budgets (ingest/cardinality.ts): known series and gateways' devices, re-read from SQLite
 *   on first use (and after a failed commit).
 * - revocations: the revoked set, re-read from SQLite on first use.
 * - live: state, rates and per-socket summary progress, rebuilt from SQLite when a dashboard needs them
 *   (rates restart from zero; a socket without progress gets a full summary at the next change; a socket
 *   out of step, one that acked a seq it was not sent, keeps the frame it owes in its attachment).
 * - alerts: rules and active alerts, re-read from SQLite; a `forMs` hold restarts from the next reading,
 *   and each alert's budget of changes (flapping) starts full. A budget alert's last refusal is in KV.
 * - registry: whether the group was listed this wake; listing again is harmless.
 * - downlink: only the group's command rate bucket, which starts full; the queue, configs and
 *   a socket's downlink opt-in (in its attachment) are read from storage.
 * - archive: the backlog size, re-read from SQLite on first use, and the flush period last requested
 *   (requested again at the next commit); captured rows and the manifest live in SQLite.
 * - history: series ids and, per series and resolution, the highest bucket known to exist (the bucket counts, history/counts.ts; both dropped when a commit rolls back), and the retention, re-read from SQLite on use.
 */
import { readDownlinkLimits, readLimits } from "../../schema/limits.ts";
import type { Alert } from "../../schema/rules.ts";
import { Registration } from "../registry.ts";
import { Alerts, BUDGET_TASK, OFFLINE_TASK, readAlertLimits } from "./alerts/alerts.ts";
import { ARCHIVE_TASK, Archive, readArchiveLimits } from "./archive/archive.ts";
import { Connections, readConnectionTiming } from "./connections/connections.ts";
import { PeerSeqs } from "./connections/peer-seqs.ts";
import { Revocations } from "./connections/revocations.ts";
import { Downlink, EXPIRY_TASK } from "./downlink/downlink.ts";
import { BACKFILL_TASK } from "./history/backfill.ts";
import { COUNT_TASK } from "./history/counts.ts";
import { OLDEST_TASK } from "./history/oldest.ts";
import { readBudget } from "./history/budget.ts";
import { History, PRUNE_TASK } from "./history/history.ts";
import { Ingest } from "./ingest/ingest.ts";
import type { Store } from "./ingest/store.ts";
import { Live, readLiveConfig } from "./live/live.ts";
import { Scheduler } from "./scheduler.ts";

/** A group's stages, wired to one another. */
export interface Stages {
  store: Store;
  connections: Connections;
  revocations: Revocations;
  seqs: PeerSeqs;
  ingest: Ingest<Alert[]>;
  live: Live;
  alerts: Alerts;
  archive: Archive;
  history: History;
  registration: Registration;
  scheduler: Scheduler;
  downlink: Downlink;
}

/**
 * Builds the stages of the group object `ctx` on `store` (whose migrations
 * the caller starts first); `name` gives the group's id. Runs on every wake
 * from hibernation, so it only constructs and wires.
 */
export function buildStages(ctx: DurableObjectState, env: Env, store: Store, name: () => string): Stages {
  const limits = readLimits({ ...env });
  const connections = new Connections(ctx, limits, readConnectionTiming({ ...env }));
  const scheduler = new Scheduler({ kv: ctx.storage.kv, alarms: ctx.storage, name });
  const live = new Live({ db: store.db, kv: ctx.storage.kv }, {
    name,
    dashboards: () => connections.dashboards(),
    onlineDevices: () => connections.onlineDevices(),
    outOfStep: (ws) => connections.outOfStep(ws),
    setOutOfStep: (ws, mark) => connections.setOutOfStep(ws, mark),
  }, readLiveConfig({ ...env }));
  const alerts = new Alerts({ db: store.db, kv: ctx.storage.kv }, { name, scheduler }, readAlertLimits({ ...env }));
  scheduler.register(OFFLINE_TASK, {
    run(now) {
      const { raised, next } = alerts.checkOffline(now);
      live.noteAlerts(raised);
      return next;
    },
  });
  scheduler.register(BUDGET_TASK, {
    run(now) {
      const { cleared, next } = alerts.clearQuietBudgets(now);
      live.noteAlerts(cleared);
      return next;
    },
  });
  const downlink = new Downlink(store.db, {
    scheduler,
    deviceSockets: (id) => connections.downlinkSockets({ kind: "device", id }),
    gatewaySockets: () => connections.downlinkSockets("gateways"),
  }, readDownlinkLimits({ ...env }), limits.groupCommitMs);
  scheduler.register(EXPIRY_TASK, { run: (now) => downlink.expire(now) });
  const archive = new Archive(store.db, {
    name,
    scheduler,
    bucket: () => env.ARCHIVE,
    raiseAlert: (backlog, cap, now) => alerts.raiseGroup("archive", backlog, cap, now),
    clearAlert: (now) => alerts.clearGroup("archive", now),
    noteAlerts: (changed) => live.noteAlerts(changed),
  }, readArchiveLimits({ ...env }));
  scheduler.register(ARCHIVE_TASK, { run: (now) => archive.flushStep(now) });
  const history = new History(store.db, store.buckets, {
    scheduler,
    databaseSize: () => ctx.storage.sql.databaseSize,
    storageAlert(on, bytes, budget, now) {
      const changed = on ? alerts.raiseGroup("storage", bytes, budget, now) : alerts.clearGroup("storage", now);
      if (changed) live.noteAlerts([changed]);
    },
  }, readBudget({ ...env }));
  scheduler.register(BACKFILL_TASK, { run: (now) => history.backfillStep(now) });
  scheduler.register(PRUNE_TASK, { run: (now) => history.pruneStep(now) });
  scheduler.register(COUNT_TASK, { run: (now) => history.countStep(now) });
  scheduler.register(OLDEST_TASK, { run: (now) => history.oldestStep(now) });
  const ingest = new Ingest<Alert[]>(store, limits, {
    name,
    hasPendingWork: () => live.hasPendingWork(),
    inCommit(c, batches, now) {
      live.inCommit(c, now);
      const changed = alerts.evaluate(batches, now);
      const full = archive.capture(batches, now);
      return full ? [...changed, full] : changed;
    },
    afterCommit(c, raised, now) {
      live.afterCommit(c, raised, now);
      alerts.afterCommit(now);
    },
    afterFailure: (retrying) => {
      alerts.afterFailure();
      archive.afterFailure();
      live.afterFailure(retrying);
    },
    rejected: (peer, code) => live.rejected(peer, code, Date.now()),
    overBudget(peer, over, now) {
      const raised = alerts.raiseBudget(peer, over.code, over.limit, over.value, now);
      if (raised) live.noteAlerts([raised]);
    },
    downlink: (peer, frame) => downlink.onReply(peer, frame),
    storageFull: (now) => history.storageFull(now),
  });
  return {
    store,
    connections,
    revocations: new Revocations(store.db),
    seqs: new PeerSeqs(store.db),
    ingest,
    live,
    alerts,
    archive,
    history,
    registration: new Registration(env, ctx),
    scheduler,
    downlink,
  };
}
