import journal from './meta/_journal.json';
import m0000 from './0000_init.sql';
import m0001 from './0001_gateways.sql';
import m0002 from './0002_alerts.sql';
import m0003 from './0003_revocations.sql';
import m0004 from './0004_seq_resets.sql';
import m0005 from './0005_alert_flapping.sql';
import m0006 from './0006_downlink.sql';
import m0007 from './0007_archive.sql';
import m0008 from './0008_history.sql';
import m0009 from './0009_gateway_devices.sql';
import m0010 from './0010_archive_ts_bounds.sql';
import m0011 from './0011_minute_packs.sql';
import m0012 from './0012_archive_rows_no_index.sql';
import m0013 from './0013_bucket_counts.sql';
import m0014 from './0014_pack_parts.sql';
import m0015 from './0015_bucket_totals.sql';
import m0016 from './0016_pack_late_in_writer.sql';
import m0017 from './0017_alert_peer_kind.sql';
import m0018 from './0018_oldest_buckets.sql';

  export default {
    journal,
    migrations: {
      m0000,
m0001,
m0002,
m0003,
m0004,
m0005,
m0006,
m0007,
m0008,
m0009,
m0010,
m0011,
m0012,
m0013,
m0014,
m0015,
m0016,
m0017,
m0018
    }
  }
  