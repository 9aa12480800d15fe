ALTER TABLE `archive_rows` ADD `min_ts` integer DEFAULT -9007199254740991 NOT NULL;--> statement-breakpoint
ALTER TABLE `archive_rows` ADD `max_ts` integer DEFAULT 9007199254740991 NOT NULL;