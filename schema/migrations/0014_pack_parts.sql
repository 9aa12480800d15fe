-- Packs keyed by part (series, first minute) instead of (series, hour), so an hour may be split into parts that each stay on their B-tree page (docs/history.md, "Packed hours"). Every existing pack is kept, as the one part of its hour, bounded by the hour's first and last minute; the next packing pass re-splits those over the part bound (worker/group/history/packer.ts).
CREATE TABLE `__new_minute_packs` (
	`series` integer NOT NULL,
	`first_minute` integer NOT NULL,
	`last_minute` integer NOT NULL,
	`buckets` integer NOT NULL,
	`data` blob NOT NULL,
	PRIMARY KEY(`series`, `first_minute`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `__new_minute_packs` (`series`, `first_minute`, `last_minute`, `buckets`, `data`) SELECT `series`, `hour` * 60, `hour` * 60 + 59, `buckets`, `data` FROM `minute_packs`;--> statement-breakpoint
-- Dropping the table drops its triggers (migration 0013's counters), recreated below on the new table; the counts do not change, the same packs moved.
DROP TABLE `minute_packs`;--> statement-breakpoint
ALTER TABLE `__new_minute_packs` RENAME TO `minute_packs`;--> statement-breakpoint
CREATE TRIGGER `pack_counts_insert` AFTER INSERT ON `minute_packs` BEGIN UPDATE `bucket_counts` SET `minute` = `minute` + NEW.`buckets` WHERE `series` = NEW.`series`; END;--> statement-breakpoint
CREATE TRIGGER `pack_counts_update` AFTER UPDATE OF `buckets` ON `minute_packs` BEGIN UPDATE `bucket_counts` SET `minute` = `minute` + NEW.`buckets` - OLD.`buckets` WHERE `series` = NEW.`series`; END;--> statement-breakpoint
CREATE TRIGGER `pack_counts_delete` AFTER DELETE ON `minute_packs` BEGIN UPDATE `bucket_counts` SET `minute` = `minute` - OLD.`buckets` WHERE `series` = OLD.`series`; END;--> statement-breakpoint
CREATE TABLE `pack_late` (
	`series` integer NOT NULL,
	`hour` integer NOT NULL,
	PRIMARY KEY(`series`, `hour`)
) WITHOUT ROWID;
--> statement-breakpoint
-- A plain minute row inserted below the packing pass's mark (a late reading, a backlog) notes its hour, so the next pass looks at that hour instead of re-reading every plain row it left. Before the first pass there is no mark: the comparison is NULL and nothing is noted (that pass reads everything).
CREATE TRIGGER `minute_pack_late` AFTER INSERT ON `minute_buckets` WHEN NEW.`bucket` < (SELECT CAST(`value` AS INTEGER) FROM `settings` WHERE `key` = 'pack_mark') BEGIN INSERT OR IGNORE INTO `pack_late` (`series`, `hour`) VALUES (NEW.`series`, NEW.`bucket` / 60); END;
