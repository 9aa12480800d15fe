CREATE TABLE `archive_parts` (
	`hour` integer NOT NULL,
	`part` integer NOT NULL,
	`key` text NOT NULL,
	`first_row` integer NOT NULL,
	`last_row` integer NOT NULL,
	`readings` integer NOT NULL,
	`bytes` integer DEFAULT 0 NOT NULL,
	`state` text NOT NULL,
	`at` integer NOT NULL,
	PRIMARY KEY(`hour`, `part`)
);
--> statement-breakpoint
CREATE INDEX `archive_parts_state` ON `archive_parts` (`state`);--> statement-breakpoint
CREATE TABLE `archive_rows` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`received` integer NOT NULL,
	`device` text NOT NULL,
	`source` text NOT NULL,
	`seq` integer NOT NULL,
	`readings` integer NOT NULL,
	`data` blob NOT NULL
);
--> statement-breakpoint
CREATE INDEX `archive_rows_received` ON `archive_rows` (`received`);