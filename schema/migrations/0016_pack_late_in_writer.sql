-- Hours behind the packing pass are noted by the bucket writer, once per commit (worker/group/history/late.ts), instead of by this trigger, whose lookup of the mark ran for every inserted minute row and cost the commit about a tenth of its CPU (docs/benchmarks.md, "History").
DROP TRIGGER IF EXISTS `minute_pack_late`;
