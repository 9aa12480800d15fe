CREATE TABLE `day_buckets` (
	`series` integer NOT NULL,
	`bucket` integer NOT NULL,
	`count` integer NOT NULL,
	`sum` real NOT NULL,
	`min` real NOT NULL,
	`max` real NOT NULL,
	`first_off` integer NOT NULL,
	`last_off` integer NOT NULL,
	`last` real NOT NULL,
	PRIMARY KEY(`series`, `bucket`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `hour_buckets` (
	`series` integer NOT NULL,
	`bucket` integer NOT NULL,
	`count` integer NOT NULL,
	`sum` real NOT NULL,
	`min` real NOT NULL,
	`max` real NOT NULL,
	`first_off` integer NOT NULL,
	`last_off` integer NOT NULL,
	`last` real NOT NULL,
	PRIMARY KEY(`series`, `bucket`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `minute_buckets` (
	`series` integer NOT NULL,
	`bucket` integer NOT NULL,
	`count` integer NOT NULL,
	`sum` real NOT NULL,
	`min` real NOT NULL,
	`max` real NOT NULL,
	`first_off` integer NOT NULL,
	`last_off` integer NOT NULL,
	`last` real NOT NULL,
	PRIMARY KEY(`series`, `bucket`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `series` (
	`id` integer PRIMARY KEY NOT NULL,
	`device` text NOT NULL,
	`metric` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `series_device_metric` ON `series` (`device`,`metric`);