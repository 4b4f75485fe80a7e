<?php
// Front controller: shows how the request was mapped to it.
header('Content-Type: application/json');
echo json_encode([
    'front' => 'index.php',
    'REQUEST_URI' => $_SERVER['REQUEST_URI'] ?? null,
    'SCRIPT_NAME' => $_SERVER['SCRIPT_NAME'] ?? null,
    'SCRIPT_FILENAME' => $_SERVER['SCRIPT_FILENAME'] ?? null,
    'PATH_INFO' => $_SERVER['PATH_INFO'] ?? null,
    'DOCUMENT_URI' => $_SERVER['DOCUMENT_URI'] ?? null,
    'QUERY_STRING' => $_SERVER['QUERY_STRING'] ?? null,
    'PHP_SELF' => $_SERVER['PHP_SELF'] ?? null,
]);
