CREATE TABLE `aggregates` (
	`device` text NOT NULL,
	`metric` text NOT NULL,
	`start` integer NOT NULL,
	`count` integer NOT NULL,
	`sum` real NOT NULL,
	`min` real NOT NULL,
	`max` real NOT NULL,
	`first_ts` integer NOT NULL,
	`last_ts` integer NOT NULL,
	`last` real NOT NULL,
	PRIMARY KEY(`device`, `metric`, `start`)
);
--> statement-breakpoint
CREATE INDEX `aggregates_metric_start` ON `aggregates` (`metric`,`start`);--> statement-breakpoint
CREATE TABLE `devices` (
	`id` text PRIMARY KEY NOT NULL,
	`last_seq` integer DEFAULT 0 NOT NULL,
	`last_seen` integer NOT NULL,
	`first_seen` integer NOT NULL,
	`readings` integer DEFAULT 0 NOT NULL,
	`batches` integer DEFAULT 0 NOT NULL
);
