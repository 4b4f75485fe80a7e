<?php
// Writes to FastCGI STDERR (error_log() with no error_log file set) and to the worker's own
// stderr (php-fpm's log with catch_workers_output), then answers normally.
error_log('director-test: via error_log');
$err = fopen('php://stderr', 'w');
fwrite($err, "director-test: via php://stderr\n");
fclose($err);
echo "body after stderr\n";
error_log('director-test: after the body');
