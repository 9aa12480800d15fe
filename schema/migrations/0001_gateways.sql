CREATE TABLE `gateways` (
	`id` text PRIMARY KEY NOT NULL,
	`last_seq` integer DEFAULT 0 NOT NULL,
	`last_seen` integer NOT NULL,
	`first_seen` integer NOT NULL,
	`readings` integer DEFAULT 0 NOT NULL,
	`batches` integer DEFAULT 0 NOT NULL
);
