CREATE TABLE `gateway_devices` (
	`gateway` text NOT NULL,
	`device` text NOT NULL,
	`first_seen` integer NOT NULL,
	PRIMARY KEY(`gateway`, `device`)
);
