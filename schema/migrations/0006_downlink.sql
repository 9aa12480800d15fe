CREATE TABLE `commands` (
	`id` text PRIMARY KEY NOT NULL,
	`device` text NOT NULL,
	`name` text NOT NULL,
	`args` text NOT NULL,
	`status` text NOT NULL,
	`created_at` integer NOT NULL,
	`delivered_at` integer,
	`completed_at` integer,
	`expires_at` integer NOT NULL,
	`result` text,
	`error` text
);
--> statement-breakpoint
CREATE INDEX `commands_device` ON `commands` (`device`,`created_at`);--> statement-breakpoint
CREATE INDEX `commands_open` ON `commands` (`status`,`expires_at`);--> statement-breakpoint
CREATE TABLE `device_configs` (
	`device` text PRIMARY KEY NOT NULL,
	`desired` text NOT NULL,
	`version` integer NOT NULL,
	`reported` text,
	`applied_version` integer DEFAULT 0 NOT NULL,
	`updated_at` integer NOT NULL
);
