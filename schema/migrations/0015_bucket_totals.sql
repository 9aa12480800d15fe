-- The per-row triggers of 0013_bucket_counts (the pack ones recreated by 0014_pack_parts) cost the commit a small UPDATE per bucket row it inserted (docs/benchmarks.md, "The storage route"); the writers now tally in memory and write one row per transaction (worker/group/history/counts.ts).
DROP TRIGGER `series_counts_insert`;--> statement-breakpoint
DROP TRIGGER `series_counts_delete`;--> statement-breakpoint
DROP TRIGGER `minute_counts_insert`;--> statement-breakpoint
DROP TRIGGER `minute_counts_delete`;--> statement-breakpoint
DROP TRIGGER `hour_counts_insert`;--> statement-breakpoint
DROP TRIGGER `hour_counts_delete`;--> statement-breakpoint
DROP TRIGGER `day_counts_insert`;--> statement-breakpoint
DROP TRIGGER `day_counts_delete`;--> statement-breakpoint
DROP TRIGGER `pack_counts_insert`;--> statement-breakpoint
DROP TRIGGER `pack_counts_update`;--> statement-breakpoint
DROP TRIGGER `pack_counts_delete`;--> statement-breakpoint
CREATE TABLE `bucket_totals` (
	`id` integer PRIMARY KEY NOT NULL,
	`minute` integer NOT NULL,
	`hour` integer NOT NULL,
	`day` integer NOT NULL,
	`counted_to` integer
);
--> statement-breakpoint
-- A group with series starts uncounted (counted_to 0): the history.count task counts its buckets, a few series per alarm step (docs/history.md).
INSERT INTO `bucket_totals` (`id`, `minute`, `hour`, `day`, `counted_to`) SELECT 1, 0, 0, 0, CASE WHEN EXISTS (SELECT 1 FROM `series`) THEN 0 ELSE NULL END;--> statement-breakpoint
DROP TABLE `bucket_counts`;
