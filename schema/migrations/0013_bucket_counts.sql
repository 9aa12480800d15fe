CREATE TABLE `bucket_counts` (
	`series` integer PRIMARY KEY NOT NULL,
	`minute` integer,
	`hour` integer,
	`day` integer
);--> statement-breakpoint
-- Series written before the counters get NULL counts: the history.count task counts them, a few series per alarm step (docs/history.md, "Storage budget").
INSERT INTO `bucket_counts` (`series`) SELECT `id` FROM `series`;--> statement-breakpoint
-- An upsert that finds its row omits the insert and updates instead (https://sqlite.org/lang_upsert.html): AFTER INSERT fires only for rows really inserted (test/worker/storage.test.ts checks it), so these count exactly the rows stored. NULL + 1 stays NULL until the task counts the series.
CREATE TRIGGER `series_counts_insert` AFTER INSERT ON `series` BEGIN INSERT INTO `bucket_counts` (`series`, `minute`, `hour`, `day`) VALUES (NEW.`id`, 0, 0, 0); END;--> statement-breakpoint
CREATE TRIGGER `series_counts_delete` AFTER DELETE ON `series` BEGIN DELETE FROM `bucket_counts` WHERE `series` = OLD.`id`; END;--> statement-breakpoint
CREATE TRIGGER `minute_counts_insert` AFTER INSERT ON `minute_buckets` BEGIN UPDATE `bucket_counts` SET `minute` = `minute` + 1 WHERE `series` = NEW.`series`; END;--> statement-breakpoint
CREATE TRIGGER `minute_counts_delete` AFTER DELETE ON `minute_buckets` BEGIN UPDATE `bucket_counts` SET `minute` = `minute` - 1 WHERE `series` = OLD.`series`; END;--> statement-breakpoint
CREATE TRIGGER `hour_counts_insert` AFTER INSERT ON `hour_buckets` BEGIN UPDATE `bucket_counts` SET `hour` = `hour` + 1 WHERE `series` = NEW.`series`; END;--> statement-breakpoint
CREATE TRIGGER `hour_counts_delete` AFTER DELETE ON `hour_buckets` BEGIN UPDATE `bucket_counts` SET `hour` = `hour` - 1 WHERE `series` = OLD.`series`; END;--> statement-breakpoint
CREATE TRIGGER `day_counts_insert` AFTER INSERT ON `day_buckets` BEGIN UPDATE `bucket_counts` SET `day` = `day` + 1 WHERE `series` = NEW.`series`; END;--> statement-breakpoint
CREATE TRIGGER `day_counts_delete` AFTER DELETE ON `day_buckets` BEGIN UPDATE `bucket_counts` SET `day` = `day` - 1 WHERE `series` = OLD.`series`; END;--> statement-breakpoint
CREATE TRIGGER `pack_counts_insert` AFTER INSERT ON `minute_packs` BEGIN UPDATE `bucket_counts` SET `minute` = `minute` + NEW.`buckets` WHERE `series` = NEW.`series`; END;--> statement-breakpoint
CREATE TRIGGER `pack_counts_update` AFTER UPDATE OF `buckets` ON `minute_packs` BEGIN UPDATE `bucket_counts` SET `minute` = `minute` + NEW.`buckets` - OLD.`buckets` WHERE `series` = NEW.`series`; END;--> statement-breakpoint
CREATE TRIGGER `pack_counts_delete` AFTER DELETE ON `minute_packs` BEGIN UPDATE `bucket_counts` SET `minute` = `minute` - OLD.`buckets` WHERE `series` = OLD.`series`; END;
