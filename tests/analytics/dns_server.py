"""A tiny authoritative DNS server on loopback that answers from fixed records (dnspython)."""

import socketserver
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset


class FixedZoneServer:
    def __init__(self, records: dict[tuple[str, str], list[str]]):
        self.records = {
            (dns.name.from_text(name).to_text().lower(), rtype.upper()): values
            for (name, rtype), values in records.items()
        }
        self.names = {name for name, _ in self.records}
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                query = dns.message.from_wire(data)
                sock.sendto(server.answer(query).to_wire(), self.client_address)

        self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Handler)
        self.port = self.udp.server_address[1]
        self.thread = threading.Thread(
            target=self.udp.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def answer(self, query):
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        if name not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        values = self.records.get((name, rtype), [])
        if values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 300, "IN", rtype, values)
            )
        return response

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.udp.shutdown()
        self.udp.server_close()
