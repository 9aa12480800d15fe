CREATE TABLE `alerts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`kind` text NOT NULL,
	`rule_id` text,
	`device` text NOT NULL,
	`metric` text,
	`op` text,
	`threshold` real,
	`value` real,
	`raised_at` integer NOT NULL,
	`cleared_at` integer
);
--> statement-breakpoint
CREATE INDEX `alerts_active` ON `alerts` (`cleared_at`);--> statement-breakpoint
CREATE INDEX `alerts_raised` ON `alerts` (`raised_at`);--> statement-breakpoint
CREATE TABLE `device_rejects` (
	`device` text NOT NULL,
	`code` text NOT NULL,
	`count` integer NOT NULL,
	`last_at` integer NOT NULL,
	PRIMARY KEY(`device`, `code`)
);
--> statement-breakpoint
CREATE TABLE `rules` (
	`id` text PRIMARY KEY NOT NULL,
	`metric` text NOT NULL,
	`op` text NOT NULL,
	`threshold` real NOT NULL,
	`device` text,
	`for_ms` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `settings` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
