ALTER TABLE `bucket_totals` ADD `oldest_minute` integer;--> statement-breakpoint
ALTER TABLE `bucket_totals` ADD `oldest_hour` integer;--> statement-breakpoint
ALTER TABLE `bucket_totals` ADD `oldest_day` integer;--> statement-breakpoint
ALTER TABLE `bucket_totals` ADD `oldest_scan` integer;--> statement-breakpoint
ALTER TABLE `bucket_totals` ADD `scan_minute` integer;--> statement-breakpoint
ALTER TABLE `bucket_totals` ADD `scan_hour` integer;--> statement-breakpoint
ALTER TABLE `bucket_totals` ADD `scan_day` integer;--> statement-breakpoint
-- A group written before these columns gets its oldest buckets here, exactly, by the seeks the storage route made on every call before (one per series and table: about 140 ms at 100,000 series), once; from now on its writers keep them (docs/history.md, "Oldest buckets without seeks").
UPDATE `bucket_totals` SET
	`oldest_minute` = (SELECT min(`o`) FROM (
		SELECT (SELECT `bucket` FROM `minute_buckets` WHERE `series` = `s`.`id` ORDER BY `bucket` LIMIT 1) AS `o` FROM `series` AS `s`
		UNION ALL SELECT (SELECT `first_minute` FROM `minute_packs` WHERE `series` = `s`.`id` ORDER BY `first_minute` LIMIT 1) FROM `series` AS `s`)),
	`oldest_hour` = (SELECT min((SELECT `bucket` FROM `hour_buckets` WHERE `series` = `s`.`id` ORDER BY `bucket` LIMIT 1)) FROM `series` AS `s`),
	`oldest_day` = (SELECT min((SELECT `bucket` FROM `day_buckets` WHERE `series` = `s`.`id` ORDER BY `bucket` LIMIT 1)) FROM `series` AS `s`)
WHERE `id` = 1;
