<?php
// Hands the file named by ?path= to the front end with X-Sendfile.
header('X-Sendfile: ' . ($_GET['path'] ?? ''));
header('Content-Type: text/x-php-body');
echo "php body, not the file\n";
